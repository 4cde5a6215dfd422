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

// Command workload is the real-node story's workload image: it answers
// HTTP on every port given as an argument ("200 <pod name>" on /), so a
// test can tell from another pod's network namespace which ports policy
// lets through.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: workload PORT...")
	}
	name := os.Getenv("POD_NAME")
	errs := make(chan error)
	for _, port := range os.Args[1:] {
		go func() {
			errs <- http.ListenAndServe(":"+port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "%s %s\n", name, port)
			}))
		}()
	}
	log.Fatal(<-errs)
}
