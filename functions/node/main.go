// Command node is the node Lambda function: appends, reads, tail and sync
// of pchannels, and appends, reads and transactions by vchannel, behind a
// Function URL (response streaming, AWS_IAM). A warm container keeps its
// writers, leases, transactions and cache across invocations; on SIGTERM
// it closes its writers, releasing their leases.
package main

import (
	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/internal/lambdamain"
)

func main() { lambdamain.ServeURL(api.RoleNode) }
