// Command node is the node Lambda function: appends, reads, tail and sync
// of pchannels, and appends, reads and transactions by vchannel, behind a
// Function URL (response streaming, AWS_IAM). A warm container keeps its
// writers and cache across invocations. In the template's shared write
// mode its writers hold no lease and run nothing between invocations, and
// transactions are kept in the bucket; in exclusive mode its writers hold
// leases and its transactions live in them, and SIGTERM closes the
// writers, releasing the leases.
package main

import (
	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/internal/lambdamain"
)

func main() { lambdamain.ServeURL(api.RoleNode) }
