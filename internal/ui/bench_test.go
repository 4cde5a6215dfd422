/*
Copyright 2026 The Palisade Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package ui_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/observer"
	"github.com/palisade-dev/palisade/internal/relay"
	"github.com/palisade-dev/palisade/internal/ui"
)

// The bench's cluster: 1,000 workloads in 20 namespaces, three entities,
// and 10,000 distinct (source, destination, port) edges.
const (
	benchNamespaces = 20
	benchWorkloads  = 1000
	benchEdges      = 10000
	benchUpdate     = 100
)

type benchGen struct {
	rng  *rand.Rand
	t    time.Time
	seen map[string]bool
}

func (g *benchGen) endpoint(w int) flows.Endpoint {
	if w >= benchWorkloads {
		return flows.Endpoint{IP: "198.51.100." + strconv.Itoa(w-benchWorkloads), Entity: []string{"world", "host", "kube-apiserver"}[w-benchWorkloads]}
	}
	ns := fmt.Sprintf("ns%02d", w%benchNamespaces)
	return flows.Endpoint{Namespace: ns, Pod: fmt.Sprintf("w%04d-0", w), IP: fmt.Sprintf("10.%d.%d.%d", w%benchNamespaces, w/250, w%250+1), Labels: map[string]string{"app": fmt.Sprintf("w%04d", w)}}
}

var benchPorts = []uint16{53, 80, 443, 5432, 8080, 9090}
var benchVerdicts = []flows.Verdict{flows.Forwarded, flows.Forwarded, flows.Dropped, flows.Audit}

// flow makes a flow between two workloads (an index past benchWorkloads
// is an entity); fresh asks for an edge not made before.
func (g *benchGen) flow(src, dst int, port uint16, v flows.Verdict) flows.Flow {
	g.t = g.t.Add(time.Millisecond)
	f := flows.Flow{Time: g.t, Node: "node-a", Protocol: "TCP", Direction: "ingress", Verdict: v, Source: g.endpoint(src), Destination: g.endpoint(dst)}
	f.Source.Port, f.Destination.Port = 40000, port
	if v != flows.Forwarded {
		f.DropReason = flows.ExplicitDeny
	}
	f.Policy = &flows.Policy{Kind: "NetworkPolicy", Namespace: f.Destination.Namespace, Name: "p", Path: "spec.ingress[0]", File: "p.cue", Line: 3, Revision: "main@sha1:0123456789abcdef"}
	return f
}

func (g *benchGen) edges(n int) []flows.Flow {
	var out []flows.Flow
	for len(out) < n {
		src, dst := g.rng.IntN(benchWorkloads+3), g.rng.IntN(benchWorkloads)
		port := benchPorts[g.rng.IntN(len(benchPorts))]
		key := fmt.Sprint(src, dst, port)
		if g.seen[key] {
			continue
		}
		g.seen[key] = true
		out = append(out, g.flow(src, dst, port, benchVerdicts[g.rng.IntN(len(benchVerdicts))]))
	}
	return out
}

// renderRecord is one entry of the page's stats.renders (app.js).
type renderRecord struct {
	Received float64 `json:"received"`
	Applied  float64 `json:"applied"`
	MS       float64 `json:"ms"`
	Flows    int     `json:"flows"`
	Full     bool    `json:"full"`
	Nodes    int     `json:"nodes"`
	Edges    int     `json:"edges"`
	Painted  float64 `json:"painted"`
}

// BenchmarkMapInBrowser measures the map in headless Chromium with 1,000
// workloads and 10k edges streamed from a relay: the time from navigation
// to the painted complete map, the cost of a full layout and render, and
// the time from the arrival of 100 new flows to their paint, on existing
// edges (no new layout) and with 10 new workloads (a new layout). Times
// come from the page's Performance API clock (performance.now, whose
// origin is the navigation), as app.js records them.
func BenchmarkMapInBrowser(b *testing.B) {
	ctx := browser(b)
	g := &benchGen{rng: rand.New(rand.NewPCG(1, 2)), t: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), seen: map[string]bool{}}
	buf := observer.NewBuffer(2 * benchEdges)
	for _, f := range g.edges(benchEdges) {
		buf.Add(f)
	}
	r := relay.New()
	r.UI = (&ui.Server{Reader: fake.NewClientBuilder().WithScheme(scheme(b)).Build()}).Handler()
	r.SetNode("node-a", agent(b, buf))
	b.Cleanup(r.Close)
	base := serveRelay(b, r)

	records := func() []renderRecord {
		return eval[[]renderRecord](b, ctx, `window.palisade.stats.renders`)
	}
	settled := func(flowsWanted int) []renderRecord {
		waitJS(b, ctx, fmt.Sprintf("%d flows painted", flowsWanted), fmt.Sprintf(`(() => { const s = window.palisade.stats, r = s.renders; return window.palisade.model.flows >= %d && r.length > 0 && r[r.length-1].painted > 0 && !document.hidden })()`, flowsWanted))
		return records()
	}

	var firstPaint, fullMS, fullFrame []float64
	var updates, relayouts []float64
	for range b.N {
		do(b, ctx, chromedp.Navigate(fmt.Sprintf("%s/ui/?last=%d", base, 2*benchEdges)))
		recs := settled(benchEdges)
		if n := eval[int](b, ctx, `document.querySelectorAll('#map path.e').length`); n != benchEdges {
			b.Fatalf("the map draws %d edges, want %d", n, benchEdges)
		}
		if n := eval[int](b, ctx, `document.querySelectorAll('#map g.node').length`); n != benchWorkloads+3 {
			b.Fatalf("the map draws %d nodes, want %d", n, benchWorkloads+3)
		}
		// The first render that holds every edge, and the last full one.
		i := slices.IndexFunc(recs, func(r renderRecord) bool { return r.Edges == benchEdges })
		firstPaint = append(firstPaint, recs[i].Painted)
		for j := len(recs) - 1; j >= 0; j-- {
			if recs[j].Full {
				fullMS = append(fullMS, recs[j].MS)
				fullFrame = append(fullFrame, recs[j].Painted-recs[j].Applied)
				break
			}
		}
		// 100 new flows on existing edges, five times; then 100 flows
		// with 10 new workloads, which need a new layout.
		total := benchEdges
		edges := eval[[]struct {
			Src, Dst string
			Port     uint16
		}](b, ctx, `[...window.palisade.model.edges.values()].slice(0, 500).map(e => ({src: e.src, dst: e.dst, port: e.port}))`)
		for k := range 5 {
			before := len(records())
			for j := range benchUpdate {
				e := edges[(k*benchUpdate+j)%len(edges)]
				src, dst := workloadIndex(b, e.Src), workloadIndex(b, e.Dst)
				buf.Add(g.flow(src, dst, e.Port, flows.Dropped))
			}
			total += benchUpdate
			recs := settled(total)
			updates = append(updates, span(recs[before:]))
		}
		before := len(records())
		for j := range benchUpdate {
			f := g.flow(j%(benchWorkloads+3), 0, 8443, flows.Dropped)
			if j < 10 {
				f.Destination.Pod = fmt.Sprintf("new%02d-0", j)
			}
			buf.Add(f)
		}
		total += benchUpdate
		recs = settled(total)
		relayouts = append(relayouts, span(recs[before:]))
	}
	b.ReportMetric(median(firstPaint), "ms-first-paint")
	b.ReportMetric(median(fullMS), "ms-full-render-js")
	b.ReportMetric(median(fullFrame), "ms-full-render-frame")
	b.ReportMetric(median(updates), "ms-update-100")
	b.ReportMetric(median(relayouts), "ms-update-100-relayout")
	b.Logf("\n%d workloads, %d edges (%d flows) in headless Chromium:\n"+
		"  navigation → complete map painted     %7.1f ms\n"+
		"  full layout + render (JS)              %7.1f ms\n"+
		"  full layout + render, to paint         %7.1f ms\n"+
		"  100 new flows on existing edges        %7.1f ms (arrival → paint, median of %d)\n"+
		"  100 new flows, 10 new workloads        %7.1f ms (arrival → paint, with a new layout)",
		benchWorkloads+3, benchEdges, benchEdges, median(firstPaint), median(fullMS), median(fullFrame), median(updates), len(updates), median(relayouts))
}

// workloadIndex inverts benchGen.endpoint's naming for the map's node ids.
func workloadIndex(b *testing.B, id string) int {
	switch id {
	case "world":
		return benchWorkloads
	case "host":
		return benchWorkloads + 1
	case "kube-apiserver":
		return benchWorkloads + 2
	}
	var ns, w int
	if _, err := fmt.Sscanf(id, "ns%d/w%d", &ns, &w); err != nil {
		b.Fatalf("node %q: %v", id, err)
	}
	return w
}

// span is the time from the first record's flows arriving to the last
// record's paint.
func span(recs []renderRecord) float64 {
	if len(recs) == 0 {
		return 0
	}
	return recs[len(recs)-1].Painted - recs[0].Received
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
