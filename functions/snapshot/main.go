// Command snapshot is the snapshot Lambda function behind a Function URL
// (response streaming, AWS_IAM): flush on demand, snapshots (create, list,
// describe, drop) and restore jobs.
package main

import (
	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/internal/lambdamain"
)

func main() { lambdamain.ServeURL(api.RoleSnapshot) }
