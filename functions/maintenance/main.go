// Command maintenance is the scheduled Lambda function (an EventBridge
// rule): each invocation runs one round of api.Maintenance — the
// stuck-assignment check and flush/GC, placeholders that only log until
// coordinator assignments and the snapshot package land.
package main

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

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
	m := api.NewMaintenance(env.Config, store)
	lambda.Start(func(ctx context.Context, _ events.EventBridgeEvent) error {
		return m.RunMaintenance(ctx, time.Now())
	})
}
