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

// Package relay fans the flows of every node's observer in to one stream:
// the manager runs it beside its controllers (--relay-bind-address), keeps
// one gRPC client per node that reports a flowsAddress on its
// NodeEnforcement, and serves users over HTTP (JSON lines), which the API
// server's service proxy carries, so `palisadectl observe` reaches it with
// the user's kubeconfig. It imports no Kubernetes client: the manager
// tells it the nodes (SetNode, RemoveNode), and palisadectl links it for
// the wire types and the query encoding.
package relay

import (
	"github.com/palisade-dev/palisade/internal/flows"
	"github.com/palisade-dev/palisade/internal/observer"
)

// Path is where the relay serves flows.
const Path = "/v1/flows"

// DefaultPort is the relay's port.
const DefaultPort = 4246

// Message is one line of the relay's stream: a flow, a loss, or news of a
// node.
type Message struct {
	Flow *flows.Flow `json:"flow,omitempty"`
	Lost *Lost       `json:"lost,omitempty"`
	Node *NodeEvent  `json:"node,omitempty"`
}

// Lost is a node's loss, as its observer reported it.
type Lost struct {
	Node string `json:"node"`
	observer.Lost
}

// NodeEvent states of a node, as the stream reports them.
const (
	// NodeUnreachable: the relay could not read the node's observer (the
	// error says why); its flows are missing from the stream until the
	// node is reconnected.
	NodeUnreachable = "unreachable"
	// NodeReconnected: the node is read again; what it observed while
	// unreachable is not in the stream.
	NodeReconnected = "reconnected"
	// NodeNoObserver: the node reports no flowsAddress (its agent runs
	// without the observer, or has not reported yet).
	NodeNoObserver = "no-observer"
	// NodeJoined: a node appeared while following; its flows follow.
	NodeJoined = "joined"
	// NodeGone: the node's NodeEnforcement was deleted while following.
	NodeGone = "gone"
)

// NodeEvent says what became of a node.
type NodeEvent struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}
