package client

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cairnlog/cairn/functions/api/wire"
)

// schema is the part of an OpenAPI 3.0 schema object the wire check reads.
type schema struct {
	Ref                  string             `yaml:"$ref"`
	Type                 string             `yaml:"type"`
	Format               string             `yaml:"format"`
	Nullable             bool               `yaml:"nullable"`
	Required             []string           `yaml:"required"`
	Properties           map[string]*schema `yaml:"properties"`
	Items                *schema            `yaml:"items"`
	AdditionalProperties additional         `yaml:"additionalProperties"`
	AllOf                []*schema          `yaml:"allOf"`
}

// additional is additionalProperties: a schema, or false (nil).
type additional struct{ *schema }

func (a *additional) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return nil // false: no other properties
	}
	a.schema = &schema{}
	return n.Decode(a.schema)
}

// openAPISchemas reads the components of the API's document.
func openAPISchemas(t *testing.T) map[string]*schema {
	t.Helper()
	b, err := os.ReadFile("../functions/api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]*schema `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Components.Schemas
}

// wireCase pairs a type the SDK sends or decodes with its schema.
type wireCase struct {
	v        any
	schema   string
	request  bool     // sent by the SDK (else decoded)
	unneeded []string // schema properties the SDK does not decode, on purpose
}

// TestWireTypesMatchOpenAPI: the types the SDK sends and decodes (those
// of functions/api/wire, most under the SDK's own names, and the SDK's own
// structs) agree with openapi.yaml, field by field: every field is a property of
// the type's schema and every property a field (but the ones listed as
// unneeded), with the same type; a required property of a request is
// never left out (omitempty), and a property an answer may carry as null
// is a pointer in the SDK.
func TestWireTypesMatchOpenAPI(t *testing.T) {
	schemas := openAPISchemas(t)
	for _, w := range []wireCase{
		{v: wire.AppendRequest{}, schema: "AppendRequest", request: true},
		{v: wire.BroadcastRequest{}, schema: "BroadcastRequest", request: true},
		{v: wire.SnapshotCreateRequest{}, schema: "SnapshotCreateRequest", request: true},
		{v: wire.RestoreRequest{}, schema: "RestoreRequest", request: true},
		{v: wire.VChannelCreateRequest{}, schema: "VChannelCreateRequest", request: true},
		{v: wire.TxnBeginRequest{}, schema: "TxnBeginRequest", request: true},
		{v: wire.TxnOut{}, schema: "Txn"},
		{v: wire.MessageIn{}, schema: "MessageIn", request: true},
		{v: wire.AppendResponse{}, schema: "AppendResponse"},
		{v: wire.ReadResponse{}, schema: "ReadResponse"},
		{v: wire.TrimRequest{}, schema: "TrimRequest", request: true},
		{v: wire.TxnCommitResponse{}, schema: "TxnCommitResponse"},
		{v: TrimResult{}, schema: "TrimResponse"},
		{v: Retention{}, schema: "Retention"},
		{v: Key{}, schema: "Key"},
		{v: Lease{}, schema: "Lease"},
		{v: PChannelStatus{}, schema: "PChannelStatus"},
		{v: Tail{}, schema: "TailResponse"},
		{v: SyncResult{}, schema: "SyncResponse"},
		{v: VChannel{}, schema: "VChannel"},
		{v: WALMark{}, schema: "Mark"},
		{v: Location{}, schema: "Location"},
		{v: BroadcastTask{}, schema: "Broadcast"},
		{v: BroadcastTarget{}, schema: "BroadcastTarget"},
		{v: FlushResult{}, schema: "FlushResponse"},
		{v: Snapshot{}, schema: "Snapshot"},
		{v: RestoreJob{}, schema: "Restore"},
	} {
		t.Run(w.schema, func(t *testing.T) {
			s, ok := schemas[w.schema]
			if !ok {
				t.Fatalf("no schema %s in openapi.yaml", w.schema)
			}
			c := wireCheck{t: t, schemas: schemas, request: w.request}
			c.object(w.schema, reflect.TypeOf(w.v), s, w.unneeded)
		})
	}
}

type wireCheck struct {
	t       *testing.T
	schemas map[string]*schema
	request bool
}

// resolve follows $ref and a lone allOf.
func (c wireCheck) resolve(s *schema) *schema {
	for s != nil {
		switch {
		case s.Ref != "":
			name := strings.TrimPrefix(s.Ref, "#/components/schemas/")
			r, ok := c.schemas[name]
			if !ok {
				c.t.Fatalf("unresolved %s", s.Ref)
			}
			s = r
		case len(s.AllOf) == 1 && s.Type == "":
			s = s.AllOf[0]
		case len(s.AllOf) > 1:
			// An object made of several: the union of their properties.
			merged := &schema{Type: "object", Properties: map[string]*schema{}}
			for _, part := range s.AllOf {
				part = c.resolve(part)
				merged.Required = append(merged.Required, part.Required...)
				for k, v := range part.Properties {
					merged.Properties[k] = v
				}
			}
			return merged
		default:
			return s
		}
	}
	return s
}

// fields lists the JSON fields of struct type t, embedded structs'
// included: name → field, and whether it has omitempty or ",string".
type jsonField struct {
	typ       reflect.Type
	omitempty bool
	asString  bool
}

func fields(t reflect.Type) map[string]jsonField {
	out := map[string]jsonField{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("json")
		if f.Anonymous && !ok {
			for k, v := range fields(f.Type) {
				out[k] = v
			}
			continue
		}
		if !ok || tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		out[name] = jsonField{typ: f.Type, omitempty: strings.Contains(opts, "omitempty"), asString: strings.Contains(opts, "string")}
	}
	return out
}

func (c wireCheck) object(at string, t reflect.Type, s *schema, unneeded []string) {
	s = c.resolve(s)
	if t.Kind() != reflect.Struct || s.Type != "object" || s.Properties == nil {
		c.t.Errorf("%s: Go %v against schema type %q", at, t, s.Type)
		return
	}
	fs := fields(t)
	for name, f := range fs {
		p, ok := s.Properties[name]
		if !ok {
			c.t.Errorf("%s.%s: a field of the SDK (%v), not in the schema", at, name, f.typ)
			continue
		}
		required := slices.Contains(s.Required, name)
		ps := c.resolve(p)
		switch {
		case c.request && f.omitempty && required:
			c.t.Errorf("%s.%s: required, but the SDK may leave it out (omitempty)", at, name)
		case !c.request && ps.Nullable && f.typ.Kind() != reflect.Pointer:
			c.t.Errorf("%s.%s: nullable, but the SDK's %v cannot hold null", at, name, f.typ)
		}
		c.value(at+"."+name, f.typ, f.asString, p)
	}
	for name := range s.Properties {
		if _, ok := fs[name]; !ok && !slices.Contains(unneeded, name) {
			c.t.Errorf("%s.%s: in the schema, not in the SDK's %v", at, name, t)
		}
	}
}

var timeType = reflect.TypeOf(time.Time{})

func (c wireCheck) value(at string, t reflect.Type, asString bool, s *schema) {
	s = c.resolve(s)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	want := ""
	switch {
	case t == timeType:
		want = "string/date-time"
	case asString:
		want = "string"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		want = "string/byte"
	case t.Kind() == reflect.String:
		want = "string"
	case t.Kind() == reflect.Bool:
		want = "boolean"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		want = "integer"
	case t.Kind() == reflect.Slice:
		if s.Type != "array" || s.Items == nil {
			c.t.Errorf("%s: Go %v against schema type %q", at, t, s.Type)
			return
		}
		c.value(at+"[]", t.Elem(), false, s.Items)
		return
	case t.Kind() == reflect.Map:
		if s.Type != "object" || s.AdditionalProperties.schema == nil {
			c.t.Errorf("%s: Go %v against schema type %q without additionalProperties", at, t, s.Type)
			return
		}
		c.value(at+"{}", t.Elem(), false, s.AdditionalProperties.schema)
		return
	case t.Kind() == reflect.Struct:
		c.object(at, t, s, nil)
		return
	default:
		c.t.Errorf("%s: Go %v has no JSON schema rule here", at, t)
		return
	}
	got := s.Type
	if s.Format == "byte" || s.Format == "date-time" {
		got += "/" + s.Format
	}
	if got != want {
		c.t.Errorf("%s: Go %v (%s) against schema %s", at, t, want, got)
	}
}
