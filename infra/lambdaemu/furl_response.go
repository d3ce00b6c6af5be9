package lambdaemu

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// contentTypeStreaming marks a streamed Function URL response (what
// lambdaurl sends): a JSON prelude, eight NUL bytes, then the body.
const contentTypeStreaming = "application/vnd.awslambda.http-integration-response"

// maxPrelude bounds the JSON prelude of a streamed response.
const maxPrelude = 64 << 10

var errPrelude = errors.New("lambdaemu: bad response prelude")

func itoa(n int) string { return strconv.Itoa(n) }

func newRequestID() string { return strings.ToLower(rand.Text()) }

// prelude is the head of a streamed response, and of a buffered one.
type prelude struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers"`
	Cookies         []string          `json:"cookies"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
}

func (p prelude) writeHeader(w http.ResponseWriter) {
	for k, v := range p.Headers {
		w.Header().Set(k, v)
	}
	for _, c := range p.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	if p.StatusCode == 0 {
		p.StatusCode = http.StatusOK
	}
	w.WriteHeader(p.StatusCode)
}

// readPrelude reads the prelude up to its eight NUL bytes.
func readPrelude(br *bufio.Reader) (prelude, error) {
	var head []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			return prelude{}, err
		}
		if b == 0 {
			break
		}
		if head = append(head, b); len(head) > maxPrelude {
			return prelude{}, errPrelude
		}
	}
	var sep [7]byte
	if _, err := io.ReadFull(br, sep[:]); err != nil || sep != [7]byte{} {
		return prelude{}, errPrelude
	}
	var p prelude
	if err := json.Unmarshal(head, &p); err != nil {
		return prelude{}, errPrelude
	}
	return p, nil
}

// writeStreamed passes a streamed response on while it arrives. A body
// cut short (the environment died, or the runtime set the error trailer)
// cuts the client's connection, as the Function URL does once the status
// is out.
func writeStreamed(w http.ResponseWriter, resp *response) {
	defer resp.finish()
	br := bufio.NewReader(resp.body)
	p, err := readPrelude(br)
	if err != nil {
		_, _ = io.Copy(io.Discard, br)
		writeMessage(w, http.StatusBadGateway, bodyError)
		return
	}
	p.writeHeader(w)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				_, _ = io.Copy(io.Discard, br) // the function runs on without its client
				return
			}
			_ = rc.Flush()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(http.ErrAbortHandler)
		}
	}
	resp.finish()
	if resp.errorType != "" {
		panic(http.ErrAbortHandler)
	}
}

// writeBuffered answers a buffered response: a LambdaFunctionURLResponse,
// or any other JSON value, which becomes a 200 application/json body.
func writeBuffered(w http.ResponseWriter, resp *response) {
	body, err := resp.readAll()
	if err != nil || resp.errorType != "" {
		writeMessage(w, http.StatusBadGateway, bodyError)
		return
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) != nil || probe["statusCode"] == nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
		return
	}
	var p prelude
	if err := json.Unmarshal(body, &p); err != nil {
		writeMessage(w, http.StatusBadGateway, bodyError)
		return
	}
	out := []byte(p.Body)
	if p.IsBase64Encoded {
		if out, err = base64.StdEncoding.DecodeString(p.Body); err != nil {
			writeMessage(w, http.StatusBadGateway, bodyError)
			return
		}
	}
	p.writeHeader(w)
	_, _ = io.Copy(w, bytes.NewReader(out))
}
