// Command coordinator is the coordinator Lambda function: lease records, the
// pchannel status table, the vchannel registry (create, list, describe,
// drop, locate) and broadcasts, behind a Function URL (response streaming,
// AWS_IAM).
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
	lambdaurl.Start(srv.Handler(api.RoleCoordinator), lambda.WithEnableSIGTERM(srv.Shutdown))
}
