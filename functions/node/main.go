// Command node is the node Lambda function: appends, reads, tail and sync
// of pchannels, and appends, reads and transactions by vchannel, behind a
// Function URL (response streaming, AWS_IAM). A warm container keeps its
// writers, leases, transactions and cache across invocations; on SIGTERM
// it closes its writers, releasing their leases.
package main

import (
	"context"
	"log"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdaurl"

	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/infra/objstore/s3store"
)

func main() {
	env, err := api.LoadEnv(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	store, err := s3store.New(context.Background(), env.S3)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := api.New(env.Config, store)
	if err != nil {
		log.Fatal(err)
	}
	lambdaurl.Start(srv.Handler(api.RoleNode), lambda.WithEnableSIGTERM(srv.Shutdown))
}
