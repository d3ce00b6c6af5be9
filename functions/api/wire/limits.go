package wire

// MaxOffset is the largest WAL offset the API accepts in a position or an
// expected_offset: 2^53−1, so that every offset is exact as a JSON number in
// any client (JavaScript's doubles included). A pchannel appending a batch
// every microsecond reaches it after 285 years.
const MaxOffset = 1<<53 - 1
