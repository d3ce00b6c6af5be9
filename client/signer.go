package client

import "net/http"

// WithRequestSigner calls sign on the request of every attempt, after the
// SDK set its headers and right before it is sent, so each retry is signed
// anew (a fresh date, the body's hash). sign may read the body through
// GetBody, and sets headers (Authorization, X-Amz-Date...). A sign error
// fails the call as not sent, without retrying, wrapping ErrUnauthorized
// (no credentials, an expired session). client/sigv4 signs with AWS SigV4
// for Lambda Function URLs. Default: requests are not signed.
func WithRequestSigner(sign func(*http.Request) error) Option {
	return func(c *Client) { c.sign = sign }
}
