# Palisade — GitOps for Kubernetes network, L7 and runtime-security policy.
# `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

GO ?= go
# go test's 10-minute default per package is too short for internal/agent, whose three
# end-to-end L7/Kafka differentials load a fresh datapath per policy set (300 loads).
GOTEST_FLAGS ?= -count=1 -timeout 60m
PKGS ?= ./...

# Paths that hold only generated code; make verify checks them.
GENERATED := api/v1alpha1/zz_generated.deepcopy.go config/crd config/rbac/role.yaml config/rbac/agent_role.yaml bpf/palisade_bpfel.go bpf/palisade_bpfel.o bpf/tracing/tracing_bpfel.go bpf/tracing/tracing_bpfel.o bpf/l7/l7_bpfel.go bpf/l7/l7_bpfel.o bpf/kafka/kafka_bpfel.go bpf/kafka/kafka_bpfel.o

include hack/tools.mk
# Images and the real-node story (make images, make e2e-node).
-include hack/node.mk

# envtest finds kube-apiserver and etcd here (built by hack/tools.mk).
export KUBEBUILDER_ASSETS := $(ENVTEST_ASSETS)

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
		/^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } \
		/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) bpf-tools ## Generate code: deepcopy (controller-gen) and go:generate.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(GO) generate ./bpf/...

.PHONY: bpf-tools
bpf-tools: ## Install clang, llvm and libbpf headers from Debian (builds bpf/).
	hack/install-bpf-tools.sh

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs into config/crd/bases and RBAC into config/rbac.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths=./controllers/... paths=./cmd/manager/... output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=agent-role,fileName=agent_role.yaml paths=./internal/agent/... output:rbac:artifacts:config=config/rbac

.PHONY: fmt
fmt: $(CUE) ## Format Go and CUE sources.
	$(GO) fmt ./...
	$(CUE) fmt ./policies/schema/ ./policies/examples/...

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: lint
lint: vet $(CUE) ## Check formatting of Go and CUE sources, and vet.
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^hack/tools/')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(CUE) fmt --check ./policies/schema/ ./policies/examples/...

.PHONY: test
test: envtest-bins $(KUBECTL) $(CUE) test-tools ## Run all tests (builds kube-apiserver, etcd, kubectl, kubelet and containerd once into bin/), the real-node story included.
	PALISADE_REQUIRE_TOOLS=1 PROMTOOL=$(PROMTOOL) PALISADE_KUBECTL=$(KUBECTL) $(GO) test $(GOTEST_FLAGS) $(PKGS)
	$(MAKE) e2e
	$(MAKE) e2e-node

.PHONY: e2e
e2e: envtest-bins $(KUBECTL) test-tools ## The whole-system story (root): Git commit → kernel enforcement, bad commits, guard denial, kernel drift and alerts, agent restart.
	PALISADE_KUBECTL=$(KUBECTL) $(GO) test -tags e2e $(GOTEST_FLAGS) -v -timeout 20m ./e2e/

.PHONY: test-tools
test-tools: ## Install the Debian packages tests use: promtool, iproute2 (netns, veth), git (http-backend), bpftool, chromium (the web view tests), dnsutils (dig against the kernel's DNS decisions), curl (toFQDNs and HTTP through real clients).
	hack/apt-install.sh prometheus iproute2 git bpftool chromium dnsutils curl

.PHONY: verify
verify: generate manifests ## Regenerate everything and fail if a generated file changed.
	@out=$$(git status --porcelain --untracked-files=all -- $(GENERATED)); \
		if [ -n "$$out" ]; then \
			echo "generated files are out of date; run 'make generate manifests' and commit:"; \
			echo "$$out"; git --no-pager diff -- $(GENERATED) | head -50; exit 1; \
		fi
	@echo "verify: generated files are up to date"

##@ Build

.PHONY: build
build: ## Build the binaries into bin/.
	$(GO) build -o $(BIN)/palisadectl ./cmd/palisadectl

.PHONY: run
run: envtest-bins $(KUBECTL) run-tools ## Run Palisade on this machine on policies/examples: control plane, manager, agent, Git, demo workloads (root for the agent).
	$(GO) build -o $(BIN)/palisade-run ./hack/run
	$(BIN)/palisade-run

.PHONY: run-tools
run-tools: ## Install what make run needs besides Go: git (http-backend) and iproute2 (netns, veth); root only.
	@if [ "$$(id -u)" = 0 ]; then hack/apt-install.sh git iproute2; fi

##@ Benchmarks

.PHONY: bench
bench: bench-validate bench-datapath bench-guard bench-engine bench-agent bench-controllers bench-flows bench-tracing bench-ui bench-dns bench-l7 bench-scale ## Run every benchmark.

.PHONY: bench-controllers
bench-controllers: envtest-bins ## Controllers vs a real API server and Git server: commit → objects applied p50/p99 over 50 webhook-triggered commits; 500 PolicySets × 20 policies, objects/s beside Flux's 3.9 Kustomizations/s.
	hack/apt-install.sh git
	PALISADE_REQUIRE_TOOLS=1 $(GO) test -run '^$$' -bench 'BenchmarkCommitToApplied$$|BenchmarkPolicySetThroughput$$' -benchtime 1x -timeout 60m ./controllers/

.PHONY: bench-engine
bench-engine: ## Node compiler: 1k/10k/100k rules over 1k workloads (time, allocs, peak heap, entries/rule); one-rule change against 100k rules.
	$(GO) test -run '^$$' -bench 'BenchmarkCompile$$' -benchmem -benchtime 3x ./internal/engine/
	$(GO) test -run '^$$' -bench 'BenchmarkCompilerOneRuleChange' -benchmem -benchtime 200x ./internal/engine/

.PHONY: bench-agent
bench-agent: ## Agent process vs a real API server: policy change → kernel p50/p99 and peak RSS at 100 and 10k policies over 5k pods (root).
	$(GO) test -run '^$$' -bench 'BenchmarkAgent$$' -benchtime 30x -timeout 60m ./internal/agent/

.PHONY: bench-guard
bench-guard: ## p50/p99 of guarding changes of 1, 100 and 1000 policies with the built-in guards.
	$(GO) test -run '^$$' -bench 'BenchmarkEvaluate|BenchmarkReview' -benchtime 200x ./internal/guard/

.PHONY: bench-validate
bench-validate: build $(CUE) ## Validate generated 1k/10k-policy repositories; compare with cue vet.
	CUE=$(CUE) PALISADECTL=$(BIN)/palisadectl hack/bench-validate.sh

.PHONY: bench-flows
bench-flows: ## Verdict events kernel → ring buffer → Go reader, and kernel → observer → gRPC client process: events/s, losses by stage, agent CPU (root).
	$(GO) test -run '^$$' -bench 'BenchmarkEventsToUserspace$$' -benchtime 2000000x ./internal/datapath/
	$(GO) test -run '^$$' -bench 'BenchmarkFlowsToClient$$' -benchtime 2000000x ./internal/agent/

.PHONY: bench-dns
bench-dns: ## DNS rules in the kernel: added latency per query p50/p99 and queries/s at saturation vs no policy and vs a userspace DNS proxy hop; toFQDNs: a query and its answer tracked and learned, a first packet decided through learned names (root).
	$(GO) test -count=1 -run '^TestDNSBench$$' -v ./internal/datapath/ -datapath.dnsbench
	$(GO) test -count=1 -run '^$$' -bench 'BenchmarkFQDNLearn|BenchmarkFQDNDecide' -benchtime 20000x ./internal/datapath/

.PHONY: bench-scale
bench-scale: envtest-bins ## Hollow nodes (the real agent on a recording fake kernel) vs a real API server, the manager and a Git server: commit → every node enforces p50/p99 over 20 commits, agents' requests/s at rest and in rollouts, RSS of manager/API server/etcd/agents (docs/scale.md).
	hack/apt-install.sh git
	PALISADE_REQUIRE_TOOLS=1 $(GO) test -count=1 -run '^TestScale$$' -v -timeout 60m ./internal/hollow/ -hollow.nodes=100 -hollow.pods=10000 -hollow.commits=20
	PALISADE_REQUIRE_TOOLS=1 $(GO) test -count=1 -run '^TestScale$$' -v -timeout 150m ./internal/hollow/ -hollow.nodes=1000 -hollow.pods=1000 -hollow.commits=20 -hollow.memlimit=12GiB -hollow.wait=50m -hollow.start-parallel=10 -hollow.shared-transport -hollow.http2-ping-timeout=120

.PHONY: bench-l7
bench-l7: ## HTTP rules in the kernel vs no policy, an L4 allow and a userspace proxy hop (httputil.ReverseProxy) on one veth path: req/s at saturation, CPU µs per request, p50/p99, kernel decision ns, the issue 14 ratios (root).
	$(GO) test -count=1 -run '^$$' -bench 'BenchmarkKeepAlive' -benchtime 5000x ./internal/l7/
	$(GO) test -count=1 -run '^$$' -bench '^BenchmarkL7Path$$' -benchtime 1x -v -timeout 30m ./internal/l7bench/

.PHONY: bench-tracing
bench-tracing: ## Tracing policies: open/close and exec loops with no, a monitor and an enforcing policy on one hook (ns/op, ratios); go build -a without and with a file-access policy; events delivered and lost (root).
	GO=$(GO) hack/bench-tracing.sh

.PHONY: bench-ui
bench-ui: test-tools ## The web view in headless Chromium: 1,000 workloads and 10k edges from a relay; time to the painted map and to paint 100 new flows.
	PALISADE_REQUIRE_TOOLS=1 $(GO) test -run '^$$' -bench 'BenchmarkMapInBrowser$$' -benchtime 1x -timeout 10m ./internal/ui/

.PHONY: bench-datapath
bench-datapath: bpf-tools ## eBPF datapath ns/packet vs parse-only, iptables and nftables; map load rate (root).
	GO=$(GO) hack/bench-datapath.sh
