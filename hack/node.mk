# Container images without a container engine, and the real-node story.
# Included by the top-level Makefile (-include hack/node.mk).
#
#   make images     the manager and agent images: bin/images/oci (OCI layout),
#                   bin/images/images.tar (for `ctr images import`), and
#                   bin/images/kustomization.yaml (config/default at their
#                   digests: `kubectl apply -k bin/images`). See docs/deploy.md.
#   make e2e-node   the whole story on a real node: kubelet, containerd and
#                   runc on this machine, Palisade installed with
#                   `kubectl apply -k`, workloads as real pods (root).
#
# Node tools carry their version in their path, like hack/tools.mk's: a
# second run builds nothing, a version bump builds anew.

NODE_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

##@ Images and the real node

# The tag and version label of the images. The digests depend on the
# sources, the Go toolchain, this and the CA bundle, nothing else.
IMAGES_VERSION ?= dev
IMAGES_REGISTRY ?= ghcr.io/palisade-dev
IMAGES_DIR := $(BIN)/images
# Static, path-free, without VCS stamps: the same source gives the same
# bytes, so the same image digests.
IMAGES_GO_BUILD := CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -buildvcs=false -ldflags '-s -w'

.PHONY: images
images: ## Build the manager and agent OCI images (no Docker) into bin/images; prints digests and sizes.
	@mkdir -p $(IMAGES_DIR)/bin
	$(IMAGES_GO_BUILD) -o $(IMAGES_DIR)/bin/manager ./cmd/manager
	$(IMAGES_GO_BUILD) -o $(IMAGES_DIR)/bin/agent ./cmd/agent
	$(GO) run ./hack/images -out $(IMAGES_DIR) -registry $(IMAGES_REGISTRY) -version $(IMAGES_VERSION) \
		-manager $(IMAGES_DIR)/bin/manager -agent $(IMAGES_DIR)/bin/agent

# The real node: kubelet, kube-controller-manager and kube-scheduler from
# the pinned Kubernetes module (hack/tools/kube, the release of
# kube-apiserver), containerd 2 from hack/tools/containerd (kubelet 1.36+
# needs containerd 2.x; Debian's is 1.6), runc and the CNI plugins from
# Debian.
CONTAINERD_VERSION := v2.4.2
KUBELET := $(BIN)/kubelet-$(KUBE_VERSION)
KUBE_CONTROLLER_MANAGER := $(BIN)/kube-controller-manager-$(KUBE_VERSION)
KUBE_SCHEDULER := $(BIN)/kube-scheduler-$(KUBE_VERSION)
CONTAINERD_DIR := $(BIN)/containerd-$(CONTAINERD_VERSION)
CONTAINERD := $(CONTAINERD_DIR)/containerd
# The story's images (manager, agent, pause, workload), tagged e2e.
NODE_IMAGES_DIR := $(BIN)/e2e-node/images
NODE_IMAGE_TAG := e2e

.PHONY: node-tools
node-tools: $(KUBELET) $(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER) $(CONTAINERD) ## Build kubelet, kube-controller-manager, kube-scheduler and containerd into bin/; install runc and the CNI plugins (Debian).
	hack/apt-install.sh runc containernetworking-plugins iproute2 util-linux bpftool git

# Built at low priority: the machines these run on are shared.
$(KUBELET) $(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER):
	$(call tools-check-version,$(TOOLS_DIR)/kube,k8s.io/kubernetes,$(KUBE_VERSION))
	@mkdir -p $(@D)
	cd $(TOOLS_DIR)/kube && nice -n 10 env $(TOOLS_BUILD) -tags '$(KUBE_TAGS)' -ldflags '$(KUBE_LDFLAGS)' \
		-o $@.tmp k8s.io/kubernetes/cmd/$(patsubst %-$(KUBE_VERSION),%,$(notdir $@))
	@mv $@.tmp $@

# containerd, its runc shim and ctr (which imports the story's images), in
# one versioned directory: containerd finds the shim on PATH.
$(CONTAINERD):
	$(call tools-check-version,$(TOOLS_DIR)/containerd,github.com/containerd/containerd/v2,$(CONTAINERD_VERSION))
	@mkdir -p $(@D).tmp
	cd $(TOOLS_DIR)/containerd && nice -n 10 env $(TOOLS_BUILD) -tags 'no_btrfs no_devmapper no_zfs' \
		-ldflags '-s -w -X github.com/containerd/containerd/v2/version.Version=$(CONTAINERD_VERSION)' -o $(@D).tmp/ \
		github.com/containerd/containerd/v2/cmd/containerd \
		github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
		github.com/containerd/containerd/v2/cmd/ctr
	@rm -rf $(@D) && mv $(@D).tmp $(@D)

.PHONY: node-images
node-images: ## Build the real-node story's images (manager, agent, pause, workload; tag e2e) into bin/e2e-node/images.
	@mkdir -p $(NODE_IMAGES_DIR)/bin
	$(IMAGES_GO_BUILD) -o $(NODE_IMAGES_DIR)/bin/manager ./cmd/manager
	$(IMAGES_GO_BUILD) -o $(NODE_IMAGES_DIR)/bin/agent ./cmd/agent
	$(IMAGES_GO_BUILD) -o $(NODE_IMAGES_DIR)/bin/pause ./e2e/node/testdata/pause
	$(IMAGES_GO_BUILD) -o $(NODE_IMAGES_DIR)/bin/workload ./e2e/node/testdata/workload
	$(GO) run ./hack/images -out $(NODE_IMAGES_DIR) -registry $(IMAGES_REGISTRY) -version $(NODE_IMAGE_TAG) \
		-manager $(NODE_IMAGES_DIR)/bin/manager -agent $(NODE_IMAGES_DIR)/bin/agent \
		-test-image pause=$(NODE_IMAGES_DIR)/bin/pause -test-image workload=$(NODE_IMAGES_DIR)/bin/workload

.PHONY: e2e-node
e2e-node: envtest-bins $(KUBECTL) node-tools node-images ## The story on a real node (root): kubectl apply -k, manager and agent as pods, real pods enforced, drift, agent replaced, each agent capability needed.
	PALISADE_KUBECTL=$(KUBECTL) PALISADE_KUBELET=$(KUBELET) \
	PALISADE_KUBE_CONTROLLER_MANAGER=$(KUBE_CONTROLLER_MANAGER) PALISADE_KUBE_SCHEDULER=$(KUBE_SCHEDULER) \
	PALISADE_CONTAINERD_DIR=$(CONTAINERD_DIR) PALISADE_NODE_IMAGES=$(NODE_IMAGES_DIR)/images.tar \
	PALISADE_NODE_IMAGE_TAG=$(NODE_IMAGE_TAG) \
		$(GO) test -tags e2enode $(GOTEST_FLAGS) -v -timeout 30m ./e2e/node/

.DEFAULT_GOAL := $(NODE_MK_DEFAULT_GOAL)
