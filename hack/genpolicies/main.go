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

// Command genpolicies generates synthetic policy repositories and measures
// how fast they validate; hack/bench-validate.sh drives it.
//
//	genpolicies [gen] -n N [-seed S] [-per-file K] [-embedded] -out DIR
//	    writes a repository of N valid NetworkPolicies (see package gen).
//	genpolicies load [-want N] [-dump FILE] DIR
//	    loads DIR with internal/loader, as palisadectl validate would,
//	    prints a JSON summary (objects, diagnostics, its own wall time and
//	    peak RSS from getrusage) and exits 1 if there are errors or not N
//	    objects. -dump writes the objects and diagnostics, one JSON line
//	    each, to compare the output of two versions of the loader.
//	genpolicies measure [-runs R] [-warmup W] [-dir D] -- CMD [ARG...]
//	    runs CMD W+R times in D, fails if a run fails, and prints the
//	    median wall time (s), peak RSS (MiB) and CPU time (s) of the R
//	    measured runs on one line; each run is logged on stderr.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/palisade-dev/palisade/hack/genpolicies/gen"
	"github.com/palisade-dev/palisade/internal/diag"
	"github.com/palisade-dev/palisade/internal/loader"
)

func main() {
	args := os.Args[1:]
	cmd := "gen"
	if len(args) > 0 && (args[0] == "gen" || args[0] == "load" || args[0] == "measure") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "gen":
		err = runGen(args)
	case "load":
		err = runLoad(args)
	case "measure":
		err = runMeasure(args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genpolicies:", err)
		os.Exit(1)
	}
}

func runGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	var cfg gen.Config
	fs.IntVar(&cfg.N, "n", 1000, "number of policies")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed")
	fs.IntVar(&cfg.PerFile, "per-file", 100, "policies per file")
	fs.IntVar(&cfg.Packages, "packages", 0, "number of packages (0: one per file, at most 5)")
	fs.BoolVar(&cfg.Embedded, "embedded", false, "no local-module.cue (replaceWith) and no _schema copy: loadable by the Palisade loader only")
	out := fs.String("out", "", "output directory (required)")
	fs.Parse(args)
	if *out == "" || fs.NArg() > 0 {
		return errors.New("usage: genpolicies [gen] -n N [-seed S] -out DIR")
	}
	st, err := gen.Write(*out, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %d policies in %d files, %d packages, %.1f MiB to %s\n",
		st.Policies, st.Files, st.Packages, float64(st.Bytes)/(1<<20), *out)
	return nil
}

type loadSummary struct {
	Objects   int     `json:"objects"`
	Errors    int     `json:"errors"`
	Warnings  int     `json:"warnings"`
	WallS     float64 `json:"wall_s"`
	MaxRSSMiB float64 `json:"maxrss_mib"`
}

func runLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	want := fs.Int("want", -1, "fail unless exactly this many objects load (-1: any)")
	dump := fs.String("dump", "", "write every object (id, position, path, JSON) and diagnostic to this file, one per line, to compare loaders")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: genpolicies load [-want N] [-dump FILE] DIR")
	}
	start := time.Now()
	res, err := loader.Load(context.Background(), fs.Arg(0), loader.Options{})
	if err != nil {
		return err
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	s := loadSummary{
		Objects:   len(res.Objects),
		Errors:    res.Diagnostics.Count(diag.Error),
		Warnings:  res.Diagnostics.Count(diag.Warning),
		WallS:     time.Since(start).Seconds(),
		MaxRSSMiB: float64(ru.Maxrss) / 1024, // KiB on Linux
	}
	for i, d := range res.Diagnostics {
		if i == 20 {
			fmt.Fprintf(os.Stderr, "... %d more\n", len(res.Diagnostics)-i)
			break
		}
		fmt.Fprintln(os.Stderr, d)
	}
	if *dump != "" {
		if err := dumpResult(*dump, res); err != nil {
			return err
		}
	}
	data, _ := json.Marshal(s)
	fmt.Println(string(data))
	if s.Errors > 0 {
		return fmt.Errorf("%d errors", s.Errors)
	}
	if *want >= 0 && s.Objects != *want {
		return fmt.Errorf("loaded %d objects, want %d", s.Objects, *want)
	}
	return nil
}

// dumpResult writes res as JSON lines: objects, then diagnostics.
func dumpResult(name string, res *loader.Result) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, o := range res.Objects {
		err := enc.Encode(struct {
			ID, Path, Package string
			Pos               diag.Pos
			JSON              json.RawMessage
		}{o.ID(), o.Path, o.Package, o.Pos, o.JSON})
		if err != nil {
			return err
		}
	}
	for _, d := range res.Diagnostics {
		if err := enc.Encode(d); err != nil {
			return err
		}
	}
	return os.WriteFile(name, b.Bytes(), 0o644)
}

type sample struct{ wall, cpu, rss float64 }

func runMeasure(args []string) error {
	fs := flag.NewFlagSet("measure", flag.ExitOnError)
	runs := fs.Int("runs", 3, "measured runs")
	warmup := fs.Int("warmup", 1, "unmeasured runs first (warm page cache)")
	dir := fs.String("dir", "", "working directory of the command")
	fs.Parse(args)
	if fs.NArg() == 0 || *runs < 1 {
		return errors.New("usage: genpolicies measure [-runs R] [-warmup W] [-dir D] -- CMD [ARG...]")
	}
	var samples []sample
	for i := range *warmup + *runs {
		s, err := runOnce(*dir, fs.Args())
		if err != nil {
			return err
		}
		tag := "run"
		if i < *warmup {
			tag = "warmup"
		} else {
			samples = append(samples, s)
		}
		fmt.Fprintf(os.Stderr, "# %s %d: wall %.3fs cpu %.3fs maxrss %.1fMiB\n", tag, i+1, s.wall, s.cpu, s.rss)
	}
	fmt.Printf("%.3f %.1f %.3f\n",
		median(samples, func(s sample) float64 { return s.wall }),
		median(samples, func(s sample) float64 { return s.rss }),
		median(samples, func(s sample) float64 { return s.cpu }))
	return nil
}

// runOnce runs argv in dir and returns its wall time, CPU time (user+sys)
// and peak RSS from wait4's rusage.
func runOnce(dir string, argv []string) (sample, error) {
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = dir
	var stderr bytes.Buffer
	c.Stderr = &stderr
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return sample{}, err
	}
	defer devnull.Close()
	c.Stdout = devnull
	start := time.Now()
	err = c.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, fmt.Errorf("%v: %v\n%s", argv, err, tail(stderr.Bytes(), 4000))
	}
	ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return sample{}, errors.New("no rusage on this platform")
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return sample{wall: wall.Seconds(), cpu: cpu.Seconds(), rss: float64(ru.Maxrss) / 1024}, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func median(s []sample, f func(sample) float64) float64 {
	v := make([]float64, len(s))
	for i := range s {
		v[i] = f(s[i])
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
