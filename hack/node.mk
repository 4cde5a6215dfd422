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

.DEFAULT_GOAL := $(NODE_MK_DEFAULT_GOAL)
