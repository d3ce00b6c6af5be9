// Command maintenance is the scheduled Lambda function (an EventBridge
// rule): each invocation runs one round of system.System.RunMaintenance — a balancer
// round (the stuck-assignment check), a flush and a compaction of every
// pchannel, the pending broadcast tasks, and snapshot GC.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/cairnlog/cairn/functions/internal/lambdamain"
)

func main() {
	_, sys := lambdamain.Must(context.Background())
	lambda.Start(func(ctx context.Context, _ events.EventBridgeEvent) error {
		return sys.RunMaintenance(ctx)
	})
}
