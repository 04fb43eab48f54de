package lint

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Formats returns the output formats Write knows.
func Formats() []string { return []string{"text", "json", "sarif", "github", "checkstyle"} }

// WriteOptions tune Write.
type WriteOptions struct {
	Color bool // ANSI colours in text output
}

// Write prints the findings of results in format.
func Write(w io.Writer, format string, results []*Result, opts WriteOptions) error {
	var all []Finding
	sources := map[string][]string{}
	contexts := map[string]ContextInfo{}
	for _, r := range results {
		all = append(all, r.Findings...)
		if r.Dockerfile != nil {
			sources[r.File] = r.Dockerfile.Lines
		}
		if r.ContextInfo.Reason != "" {
			contexts[r.File] = r.ContextInfo
		}
	}
	switch format {
	case "text", "":
		for _, r := range results {
			if err := writeContext(w, r, opts); err != nil {
				return err
			}
			if err := writeText(w, r.Findings, sources, opts); err != nil {
				return err
			}
		}
		return nil
	case "json":
		return writeJSON(w, results, all, contexts)
	case "sarif":
		return writeSARIF(w, all, contexts)
	case "github":
		return writeGitHub(w, all)
	case "checkstyle":
		return writeCheckstyle(w, all)
	}
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(Formats(), ", "))
}

const (
	ansiReset = "\x1b[0m"
	ansiBold  = "\x1b[1m"
	ansiDim   = "\x1b[2m"
	ansiRed   = "\x1b[31m"
	ansiYel   = "\x1b[33m"
	ansiCyan  = "\x1b[36m"
)

// writeContext prints which build context a Dockerfile was linted
// against, and why.
func writeContext(w io.Writer, r *Result, opts WriteOptions) error {
	ci := r.ContextInfo
	if ci.Reason == "" {
		return nil
	}
	line := fmt.Sprintf("%s: no build context (%s)", r.File, ci.Reason)
	if ci.Dir != "" {
		line = fmt.Sprintf("%s: build context %s (%s)", r.File, ci.Dir, ci.Reason)
	}
	if opts.Color {
		line = ansiDim + line + ansiReset
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

func writeText(w io.Writer, fs []Finding, sources map[string][]string, opts WriteOptions) error {
	paint := func(code, s string) string {
		if !opts.Color {
			return s
		}
		return code + s + ansiReset
	}
	for _, f := range fs {
		sev := f.Severity.String()
		switch f.Severity {
		case SeverityError:
			sev = paint(ansiRed+ansiBold, sev)
		case SeverityWarning:
			sev = paint(ansiYel+ansiBold, sev)
		default:
			sev = paint(ansiCyan, sev)
		}
		fix := ""
		if f.Fixable {
			fix = paint(ansiDim, " (fixable)")
		}
		if _, err := fmt.Fprintf(w, "%s:%d:%d: %s %s: %s%s\n", f.File, f.Start.Line, max(f.Start.Column, 1), sev, paint(ansiBold, f.Rule), f.Message, fix); err != nil {
			return err
		}
		if lines := sources[f.File]; f.Start.Line >= 1 && f.Start.Line <= len(lines) {
			src := strings.TrimRight(lines[f.Start.Line-1], "\r")
			if len(src) > 200 {
				src = src[:200] + "..."
			}
			col := max(f.Start.Column, 1)
			lead := len(src) - len(strings.TrimLeft(src, " \t"))
			col = max(col, lead+1)
			fmt.Fprintf(w, "  %4d | %s\n       | %s%s\n", f.Start.Line, src, strings.Repeat(" ", col-1), paint(ansiYel, "^"))
		}
		if f.URL != "" {
			fmt.Fprintf(w, "       %s\n", paint(ansiDim, f.URL))
		}
	}
	return nil
}

// jsonFinding is one entry of the versioned JSON schema; fields are stable.
type jsonFinding struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	EndLine  int    `json:"endLine"`
	Message  string `json:"message"`
	URL      string `json:"url"`
	Fixable  bool   `json:"fixable"`
	// Context was added in version 2.
	Context *ContextInfo `json:"context"`
}

// jsonFile is one linted Dockerfile and its context (version 2).
type jsonFile struct {
	File    string       `json:"file"`
	Context *ContextInfo `json:"context"`
}

// JSONVersion is the version of the JSON output schema. Version 2 added
// "files" and each finding's "context".
const JSONVersion = 2

func writeJSON(w io.Writer, results []*Result, fs []Finding, contexts map[string]ContextInfo) error {
	ctxOf := func(file string) *ContextInfo {
		if ci, ok := contexts[file]; ok {
			return &ci
		}
		return nil
	}
	out := struct {
		Version  int           `json:"version"`
		Files    []jsonFile    `json:"files"`
		Findings []jsonFinding `json:"findings"`
	}{Version: JSONVersion, Files: []jsonFile{}, Findings: []jsonFinding{}}
	for _, r := range results {
		out.Files = append(out.Files, jsonFile{r.File, ctxOf(r.File)})
	}
	for _, f := range fs {
		out.Findings = append(out.Findings, jsonFinding{f.Rule, f.Severity.String(), f.File, f.Start.Line, max(f.Start.Column, 1), max(f.End.Line, f.Start.Line), f.Message, f.URL, f.Fixable, ctxOf(f.File)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func sarifLevel(s Severity) string {
	switch s {
	case SeverityError:
		return "error"
	case SeverityWarning:
		return "warning"
	}
	return "note"
}

func writeSARIF(w io.Writer, fs []Finding, contexts map[string]ContextInfo) error {
	type obj = map[string]any
	var ids []string
	index := map[string]int{}
	for _, f := range fs {
		if _, ok := index[f.Rule]; !ok {
			index[f.Rule] = 0
			ids = append(ids, f.Rule)
		}
	}
	sort.Strings(ids)
	rules := []obj{}
	for i, id := range ids {
		index[id] = i
		r := obj{"id": id}
		if info := RuleByName(id); info != nil {
			r["shortDescription"] = obj{"text": info.Description}
			r["helpUri"] = info.URL
			r["defaultConfiguration"] = obj{"level": sarifLevel(info.Severity)}
		}
		rules = append(rules, r)
	}
	results := []obj{}
	for _, f := range fs {
		region := obj{"startLine": max(f.Start.Line, 1), "startColumn": max(f.Start.Column, 1)}
		if f.End.Line >= f.Start.Line && f.End.Line > 0 {
			region["endLine"] = f.End.Line
		}
		res := obj{
			"ruleId": f.Rule, "ruleIndex": index[f.Rule], "level": sarifLevel(f.Severity),
			"message": obj{"text": f.Message},
			"locations": []obj{{"physicalLocation": obj{
				"artifactLocation": obj{"uri": strings.TrimPrefix(toSlash(f.File), "./")},
				"region":           region,
			}}},
		}
		if ci, ok := contexts[f.File]; ok {
			res["properties"] = obj{"context": ci}
		}
		results = append(results, res)
	}
	log := obj{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []obj{{
			"tool": obj{"driver": obj{
				"name": "strata", "informationUri": "https://github.com/strata-build/strata", "rules": rules,
			}},
			"results": results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

func toSlash(p string) string { return strings.ReplaceAll(p, "\\", "/") }

// writeGitHub prints workflow commands that GitHub Actions shows as annotations.
func writeGitHub(w io.Writer, fs []Finding) error {
	esc := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A")
	prop := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C")
	for _, f := range fs {
		level := "warning"
		switch f.Severity {
		case SeverityError:
			level = "error"
		case SeverityInfo:
			level = "notice"
		}
		if _, err := fmt.Fprintf(w, "::%s file=%s,line=%d,endLine=%d,col=%d,title=%s::%s\n", level, prop.Replace(f.File), f.Start.Line,
			max(f.End.Line, f.Start.Line), max(f.Start.Column, 1), prop.Replace(f.Rule), esc.Replace(f.Message+" ("+f.URL+")")); err != nil {
			return err
		}
	}
	return nil
}

func writeCheckstyle(w io.Writer, fs []Finding) error {
	type xerr struct {
		Line     int    `xml:"line,attr"`
		Column   int    `xml:"column,attr"`
		Severity string `xml:"severity,attr"`
		Message  string `xml:"message,attr"`
		Source   string `xml:"source,attr"`
	}
	type xfile struct {
		Name   string `xml:"name,attr"`
		Errors []xerr `xml:"error"`
	}
	type xroot struct {
		XMLName xml.Name `xml:"checkstyle"`
		Version string   `xml:"version,attr"`
		Files   []xfile  `xml:"file"`
	}
	root := xroot{Version: "4.3"}
	byFile := map[string]int{}
	for _, f := range fs {
		i, ok := byFile[f.File]
		if !ok {
			i = len(root.Files)
			byFile[f.File] = i
			root.Files = append(root.Files, xfile{Name: f.File})
		}
		root.Files[i].Errors = append(root.Files[i].Errors, xerr{f.Start.Line, max(f.Start.Column, 1), f.Severity.String(), f.Message, "strata." + f.Rule})
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(root); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
