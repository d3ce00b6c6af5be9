// Command coordinator is the coordinator Lambda function: lease records, the
// pchannel status table, the vchannel registry (create, list, describe,
// drop, locate) and broadcasts, behind a Function URL (response streaming,
// AWS_IAM).
package main

import (
	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/internal/lambdamain"
)

func main() { lambdamain.ServeURL(api.RoleCoordinator) }
