// Package sigv4 signs the requests of a Cairn client with AWS Signature
// Version 4 for Lambda Function URLs (AuthType AWS_IAM, as template.yaml
// deploys them): service "lambda", the region taken from the URL's host
// (<id>.lambda-url.<region>.on.aws) or else from the AWS configuration,
// and the SHA-256 of the body in the signature and in
// X-Amz-Content-Sha256. Signing and credentials are aws-sdk-go-v2's own:
// aws/signer/v4 and the default credential chain of config.LoadDefaultConfig
// (environment, shared config and credentials files with profiles, SSO,
// web identity, ECS and EC2 instance roles), cached and refreshed by
// aws.CredentialsCache.
//
// It is a package of its own so that the SDK (package client) does not
// pull in the AWS SDK for programs that talk to `cairn serve` only, which
// authenticates with a bearer token (client.WithToken) instead.
//
// # Retries
//
// The client calls the signer on every attempt (client.WithRequestSigner),
// so a retried request carries a fresh X-Amz-Date and signature, computed
// over the same body. Transport does the same for any http.Client: it signs
// each request it sends, reading a body without GetBody into memory first
// (a signature needs the body's hash before the first byte is sent).
//
// # Concurrency
//
// A Signer and a Transport are safe for concurrent use.
//
// # Example
//
//	s, err := sigv4.Load(ctx, "my-profile", "") // region: from the URLs, else the profile's
//	if err != nil { ... }
//	c, err := client.NewEndpoints(client.Endpoints{Node: nodeURL, Coordinator: coordURL, Snapshot: snapURL}, s.Option())
package sigv4
