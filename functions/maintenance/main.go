// Command maintenance is the scheduled Lambda function (an EventBridge
// rule): each invocation runs one round of api.Maintenance — a balancer
// round (the stuck-assignment check), a flush and a compaction of every
// pchannel, the pending broadcast tasks, and snapshot GC.
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
	m, err := api.NewMaintenance(env.Config, store)
	if err != nil {
		log.Fatal(err)
	}
	lambda.Start(func(ctx context.Context, _ events.EventBridgeEvent) error {
		return m.RunMaintenance(ctx, time.Now())
	})
}
