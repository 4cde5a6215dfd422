# Developer tools built from source, pinned by the Go modules in hack/tools/.
# Included by the top-level Makefile; also usable on its own:
#   make -f hack/tools.mk tools
#
# Each binary carries its version in its file name, so an existing file is
# always current: a second run builds nothing, and a version bump builds anew.
# Bump a version in the module's go.mod (for kube: hack/tools/kube/
# update-replaces.sh) and in the variable below together; the recipes check
# that they agree.

# Keep the including Makefile's default goal even if it includes us first.
TOOLS_MK_DEFAULT_GOAL := $(.DEFAULT_GOAL)

TOOLS_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))/tools

BIN ?= $(CURDIR)/bin

KUBE_VERSION := v1.37.2
ETCD_VERSION := v3.6.16
CONTROLLER_TOOLS_VERSION := v0.23.0
CUE_VERSION := v0.17.1

KUBE_APISERVER := $(BIN)/kube-apiserver-$(KUBE_VERSION)
# kubectl from the same release as the API server, so tests never see
# client/server skew; its built-in kustomize is the one `kubectl -k` uses.
KUBECTL := $(BIN)/kubectl-$(KUBE_VERSION)
ETCD := $(BIN)/etcd-$(ETCD_VERSION)
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
CUE := $(BIN)/cue-$(CUE_VERSION)

# Directory laid out as envtest expects (BinaryAssetsDirectory or
# KUBEBUILDER_ASSETS): kube-apiserver and etcd side by side.
export ENVTEST_ASSETS := $(BIN)/k8s/$(KUBE_VERSION)-$(ETCD_VERSION)

# GOWORK=off: a go.work at the repo root must not capture the tool modules.
# CGO_ENABLED=0 matches how upstream releases these binaries (static).
TOOLS_GO := GOWORK=off CGO_ENABLED=0 go
TOOLS_BUILD := $(TOOLS_GO) build -trimpath

# Same version stamps and tags as kubernetes' hack/lib/golang.sh, so the
# server reports v1.37.2 rather than v0.0.0-master.
KUBE_LDFLAGS := -s -w $(foreach p,k8s.io/client-go/pkg/version k8s.io/component-base/version,\
	-X $(p).gitVersion=$(KUBE_VERSION) \
	-X $(p).gitMajor=$(word 1,$(subst ., ,$(KUBE_VERSION:v%=%))) \
	-X $(p).gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION:v%=%))) \
	-X $(p).gitTreeState=clean)
KUBE_TAGS := selinux,notest,grpcnotrace

# $(call tools-check-version,module dir,module path,expected version)
# Fails fast if the Makefile variable and the module's go.mod disagree.
define tools-check-version
@v=$$(cd $(1) && $(TOOLS_GO) list -m -f '{{.Version}}' $(2)) && \
	if [ "$$v" != "$(3)" ]; then \
		echo "$(2) is $$v in $(1)/go.mod but $(3) in hack/tools.mk" >&2; exit 1; \
	fi
endef

.PHONY: tools envtest-bins kubectl

tools: envtest-bins $(KUBECTL) $(CONTROLLER_GEN) $(CUE) ## Build every pinned tool into bin/.

kubectl: $(KUBECTL) ## Build kubectl (same release as kube-apiserver) into bin/.

envtest-bins: ## Build kube-apiserver and etcd and lay out $(ENVTEST_ASSETS).
envtest-bins: $(ENVTEST_ASSETS)/kube-apiserver $(ENVTEST_ASSETS)/etcd

# Build to a temp name and rename, so an interrupted build never leaves a
# file that make would take as finished.
$(KUBE_APISERVER):
	$(call tools-check-version,$(TOOLS_DIR)/kube,k8s.io/kubernetes,$(KUBE_VERSION))
	@mkdir -p $(@D)
	cd $(TOOLS_DIR)/kube && $(TOOLS_BUILD) -tags '$(KUBE_TAGS)' -ldflags '$(KUBE_LDFLAGS)' \
		-o $@.tmp k8s.io/kubernetes/cmd/kube-apiserver
	@mv $@.tmp $@

$(KUBECTL):
	$(call tools-check-version,$(TOOLS_DIR)/kube,k8s.io/kubernetes,$(KUBE_VERSION))
	@mkdir -p $(@D)
	cd $(TOOLS_DIR)/kube && $(TOOLS_BUILD) -tags '$(KUBE_TAGS)' -ldflags '$(KUBE_LDFLAGS)' \
		-o $@.tmp k8s.io/kubernetes/cmd/kubectl
	@mv $@.tmp $@

$(ETCD):
	$(call tools-check-version,$(TOOLS_DIR)/etcd,go.etcd.io/etcd/server/v3,$(ETCD_VERSION))
	@mkdir -p $(@D)
	cd $(TOOLS_DIR)/etcd && $(TOOLS_BUILD) -ldflags '-s -w' -o $@.tmp .
	@mv $@.tmp $@

# The version stamp keeps "controller-gen.kubebuilder.io/version" in generated
# CRDs at the release, not "(devel)".
$(CONTROLLER_GEN):
	$(call tools-check-version,$(TOOLS_DIR),sigs.k8s.io/controller-tools,$(CONTROLLER_TOOLS_VERSION))
	@mkdir -p $(@D)
	cd $(TOOLS_DIR) && $(TOOLS_BUILD) \
		-ldflags '-s -w -X sigs.k8s.io/controller-tools/pkg/version.version=$(CONTROLLER_TOOLS_VERSION)' \
		-o $@.tmp sigs.k8s.io/controller-tools/cmd/controller-gen
	@mv $@.tmp $@

$(CUE):
	$(call tools-check-version,$(TOOLS_DIR),cuelang.org/go,$(CUE_VERSION))
	@mkdir -p $(@D)
	cd $(TOOLS_DIR) && $(TOOLS_BUILD) -ldflags '-s -w' -o $@.tmp cuelang.org/go/cmd/cue
	@mv $@.tmp $@

# Relative links keep the assets dir valid if the checkout moves.
$(ENVTEST_ASSETS)/kube-apiserver: $(KUBE_APISERVER)
	@mkdir -p $(@D)
	ln -sfn ../../$(notdir $<) $@

$(ENVTEST_ASSETS)/etcd: $(ETCD)
	@mkdir -p $(@D)
	ln -sfn ../../$(notdir $<) $@

# promtool (alert rule tests) comes from Debian's prometheus package,
# installed by the Makefile's test-tools target.
PROMTOOL := /usr/bin/promtool

.DEFAULT_GOAL := $(TOOLS_MK_DEFAULT_GOAL)
