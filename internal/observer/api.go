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

package observer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"

	"github.com/palisade-dev/palisade/internal/flows"
)

// The gRPC service is written by hand: one server-streaming method whose
// messages are JSON (the codec below), so that it needs no protoc and its
// wire form is the flow record's documented JSON (docs/flows.md).
const (
	// ServiceName is the gRPC service.
	ServiceName = "palisade.observer.v1.Observer"
	// ObserveMethod is the full method name of Observe.
	ObserveMethod = "/" + ServiceName + "/Observe"
	// CodecName is the content subtype of the service's messages
	// ("application/grpc+json").
	CodecName = "json"
	// DefaultPort is where the agent serves the service.
	DefaultPort = 4245
)

// Request asks for flows.
type Request struct {
	Filter Filter `json:"filter"`
	// Follow keeps the stream open and sends new flows as they come.
	Follow bool `json:"follow,omitempty"`
	// Last is how many of the held flows to send first; 0 sends all of
	// them without Follow and none with it.
	Last int `json:"last,omitempty"`
}

// Response is one message of the stream: a flow, or a loss.
type Response struct {
	Flow *flows.Flow `json:"flow,omitempty"`
	Lost *Lost       `json:"lost,omitempty"`
}

// Lost says how many flows were lost at a stage.
type Lost struct {
	Stage string `json:"stage"`
	Count uint64 `json:"count"`
	// Total marks the count since the agent started (sent first);
	// otherwise the count is of losses while this stream followed.
	Total bool `json:"total,omitempty"`
}

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return CodecName }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// ObserverServer is the service's server side.
type ObserverServer interface {
	Observe(req *Request, stream grpc.ServerStream) error
}

// ServiceDesc describes the service for grpc.Server.RegisterService.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*ObserverServer)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Observe",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			req := new(Request)
			if err := stream.RecvMsg(req); err != nil {
				return err
			}
			return srv.(ObserverServer).Observe(req, stream)
		},
	}},
	Metadata: "internal/observer/api.go",
}

// Server serves a Buffer.
type Server struct{ Buffer *Buffer }

// Observe implements ObserverServer.
func (s *Server) Observe(req *Request, stream grpc.ServerStream) error {
	return s.Buffer.Observe(stream.Context(), req, func(r *Response) error { return stream.SendMsg(r) })
}

// Register adds the service to g, serving b.
func Register(g *grpc.Server, b *Buffer) { g.RegisterService(&ServiceDesc, &Server{Buffer: b}) }

// Observe calls the service on conn and hands each response to fn until
// the stream ends (nil), ctx ends, or fn fails.
func Observe(ctx context.Context, conn grpc.ClientConnInterface, req *Request, fn func(*Response) error) error {
	stream, err := conn.NewStream(ctx, &ServiceDesc.Streams[0], ObserveMethod, grpc.CallContentSubtype(CodecName))
	if err != nil {
		return err
	}
	if err := stream.SendMsg(req); err != nil {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	for {
		r := new(Response)
		if err := stream.RecvMsg(r); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

// Serve serves b's flows on lis until ctx ends; then it closes every
// stream.
func Serve(ctx context.Context, lis net.Listener, b *Buffer) error {
	g := grpc.NewServer()
	Register(g, b)
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			g.Stop()
		case <-done:
		}
	}()
	err := g.Serve(lis)
	close(done)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
