// tests/helm/render/main.go - a small stand-in for `helm template`, for tests/helm/test_chart.py
// on machines without a helm binary (Debian has none). It does what helm does for helm/agentry:
// loads Chart.yaml and values.yaml, merges -f files and --set values over them, validates the
// result against values.schema.json, checks the chart's kubeVersion, and renders templates/*
// (but _*.tpl and NOTES.txt unless --notes) with Go's text/template, sprig's functions and
// helm's own (include, tpl, required, fail, toYaml, fromYaml, toJson, fromJson, lookup). It
// prints one YAML document per object, each headed by "# Source: CHART/templates/FILE" as helm
// does. Exit 1 with the error on stderr when the values are invalid or a template fails.
//
// Like helm, numbers from values files are float64 (helm reads YAML through JSON), so a
// template that forgets `int` where helm needs it fails here too. Built in GOPATH mode from
// Debian's golang-github-masterminds-sprig-dev, golang-gopkg-yaml.v3-dev and
// golang-github-xeipuuv-gojsonschema-dev (GO111MODULE=off GOPATH=/usr/share/gocode): no network.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/semver"
	"github.com/Masterminds/sprig"
	"github.com/xeipuuv/gojsonschema"
	"gopkg.in/yaml.v3"
)

const kubeVersion = "v1.30.0"

type options struct {
	chart, release, namespace string
	files, sets               []string
	notes, skipSchema         bool
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: render CHART_DIR [-f VALUES.yaml]... [--set KEY=VALUE]... [--name RELEASE] [--namespace NS] [--notes] [--skip-schema-validation]")
	os.Exit(2)
}

func parseArgs(args []string) options {
	o := options{release: "release-name", namespace: "default"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 >= len(args) {
				usage()
			}
			i++
			return args[i]
		}
		switch a {
		case "-f", "--values":
			o.files = append(o.files, next())
		case "--set":
			o.sets = append(o.sets, next())
		case "--name":
			o.release = next()
		case "--namespace", "-n":
			o.namespace = next()
		case "--notes":
			o.notes = true
		case "--skip-schema-validation": // as helm's: to reach the templates' own checks
			o.skipSchema = true
		default:
			if strings.HasPrefix(a, "-") || o.chart != "" {
				usage()
			}
			o.chart = a
		}
	}
	if o.chart == "" {
		usage()
	}
	return o
}

// readYAML reads a YAML mapping as helm does: through JSON, so numbers are float64.
func readYAML(path string) (map[string]interface{}, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v interface{}
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if v == nil {
		return map[string]interface{}{}, nil
	}
	v = jsonish(v)
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: not a mapping", path)
	}
	return m, nil
}

// jsonish turns what yaml.v3 made into what encoding/json would: float64 numbers.
func jsonish(v interface{}) interface{} {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out interface{}
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	return out
}

// merge puts src over dst, maps merged key by key, anything else replaced (helm's coalescing;
// a null in src deletes the key, as in helm).
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, sv := range src {
		if sv == nil {
			delete(dst, k)
			continue
		}
		sm, sok := sv.(map[string]interface{})
		dm, dok := dst[k].(map[string]interface{})
		if sok && dok {
			dst[k] = merge(dm, sm)
		} else {
			dst[k] = sv
		}
	}
	return dst
}

// setValue applies one --set a.b.c=v: v is a bool, an integer, null or a string, as helm's
// strvals reads it; {a,b} is a list of those.
func setValue(vals map[string]interface{}, kv string) error {
	eq := strings.Index(kv, "=")
	if eq <= 0 {
		return fmt.Errorf("--set %q: want KEY=VALUE", kv)
	}
	scalar := func(s string) interface{} {
		switch s {
		case "true":
			return true
		case "false":
			return false
		case "null":
			return nil
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
		return s
	}
	raw := kv[eq+1:]
	var val interface{}
	if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
		list := []interface{}{}
		for _, s := range strings.Split(raw[1:len(raw)-1], ",") {
			if s != "" {
				list = append(list, scalar(s))
			}
		}
		val = list
	} else {
		val = scalar(raw)
	}
	path := strings.Split(kv[:eq], ".")
	m := vals
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = val
	return nil
}

func validate(chart string, vals map[string]interface{}) error {
	b, err := os.ReadFile(filepath.Join(chart, "values.schema.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(b), gojsonschema.NewGoLoader(vals))
	if err != nil {
		return fmt.Errorf("values.schema.json: %v", err)
	}
	if res.Valid() {
		return nil
	}
	var msg strings.Builder
	msg.WriteString("values don't meet the specifications of the schema(s) in the following chart(s):\n")
	for _, e := range res.Errors() {
		fmt.Fprintf(&msg, "- %s\n", e)
	}
	return errors.New(strings.TrimSpace(msg.String()))
}

func toYAML(v interface{}) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

type renderer struct {
	root *template.Template
}

func (r *renderer) funcs() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env") // helm removes these two: a chart must not read the machine's environment
	delete(f, "expandenv")
	f["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		if err := r.root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := r.root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	f["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	f["fail"] = func(msg string) (string, error) { return "", errors.New(msg) }
	f["toYaml"] = toYAML
	f["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["toJson"] = func(v interface{}) string {
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	// helm template talks to no cluster: lookup finds nothing.
	f["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	return f
}

type apiVersions []string

func (a apiVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

func run(o options) error {
	meta, err := readYAML(filepath.Join(o.chart, "Chart.yaml"))
	if err != nil {
		return err
	}
	vals, err := readYAML(filepath.Join(o.chart, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range o.files {
		over, err := readYAML(f)
		if err != nil {
			return err
		}
		vals = merge(vals, over)
	}
	for _, s := range o.sets {
		if err := setValue(vals, s); err != nil {
			return err
		}
	}
	vals = jsonish(vals).(map[string]interface{})
	if !o.skipSchema {
		if err := validate(o.chart, vals); err != nil {
			return err
		}
	}
	str := func(k string) string { s, _ := meta[k].(string); return s }
	name := str("name")
	if c := str("kubeVersion"); c != "" {
		con, err := semver.NewConstraint(c)
		if err != nil {
			return fmt.Errorf("Chart.yaml: kubeVersion %q: %v", c, err)
		}
		if !con.Check(semver.MustParse(kubeVersion)) {
			return fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", c, kubeVersion)
		}
	}
	kv := semver.MustParse(kubeVersion)
	top := map[string]interface{}{
		"Values": vals,
		"Chart": map[string]interface{}{
			"Name": name, "Version": str("version"), "AppVersion": str("appVersion"),
			"APIVersion": str("apiVersion"), "Description": str("description"),
			"Type": str("type"), "KubeVersion": str("kubeVersion"),
		},
		"Release": map[string]interface{}{
			"Name": o.release, "Namespace": o.namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{
				"Version": kubeVersion, "GitVersion": kubeVersion,
				"Major": strconv.FormatUint(kv.Major(), 10), "Minor": strconv.FormatUint(kv.Minor(), 10),
			},
			"APIVersions": apiVersions{"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1"},
		},
		"Files": map[string]interface{}{},
	}

	paths, err := filepath.Glob(filepath.Join(o.chart, "templates", "*"))
	if err != nil {
		return err
	}
	sort.Strings(paths)
	r := &renderer{}
	r.root = template.New("root").Funcs(r.funcs()).Option("missingkey=zero")
	var names []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		tname := name + "/templates/" + filepath.Base(p)
		if _, err := r.root.New(tname).Parse(string(b)); err != nil {
			return err
		}
		base := filepath.Base(p)
		if strings.HasPrefix(base, "_") {
			continue
		}
		if base == "NOTES.txt" && !o.notes || base != "NOTES.txt" && o.notes {
			continue
		}
		names = append(names, tname)
	}
	sep := regexp.MustCompile(`(?m)^---[ \t]*$`)
	var out strings.Builder
	for _, tname := range names {
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": tname, "BasePath": name + "/templates"}
		var buf bytes.Buffer
		if err := r.root.ExecuteTemplate(&buf, tname, data); err != nil {
			return err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if o.notes {
			out.WriteString(text)
			continue
		}
		for _, doc := range sep.Split(text, -1) {
			doc = strings.TrimSpace(doc)
			if doc == "" || onlyComments(doc) {
				continue
			}
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", tname, doc)
		}
	}
	_, err = os.Stdout.WriteString(out.String())
	return err
}

// onlyComments: a document of comments alone is no object; helm leaves it out too.
func onlyComments(doc string) bool {
	for _, l := range strings.Split(doc, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

func main() {
	if err := run(parseArgs(os.Args[1:])); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
