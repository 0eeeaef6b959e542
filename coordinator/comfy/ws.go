package comfy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// wsBuffer is how many messages wait for a slow client before it is
// dropped (it reconnects and finds its results in /history).
const wsBuffer = 1024

// wsWriteTimeout bounds one write to a client.
const wsWriteTimeout = 10 * time.Second

// Binary websocket messages start with a big-endian event type; a preview
// image then has its format (ComfyUI's BinaryEventTypes and send_image).
const (
	binaryPreviewImage = 1
	previewFormatPNG   = 2
)

// message is one text message of the websocket: {"type": ..., "data": ...}.
type message struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// frame is one message to send, encoded.
type frame struct {
	typ  websocket.MessageType
	data []byte
}

func textFrame(typ string, data any) frame {
	b, _ := json.Marshal(message{Type: typ, Data: data})
	return frame{typ: websocket.MessageText, data: b}
}

// previewFrame is a binary PREVIEW_IMAGE message holding a PNG.
func previewFrame(pngData []byte) frame {
	b := make([]byte, 8, 8+len(pngData))
	binary.BigEndian.PutUint32(b[0:4], binaryPreviewImage)
	binary.BigEndian.PutUint32(b[4:8], previewFormatPNG)
	return frame{typ: websocket.MessageBinary, data: append(b, pngData...)}
}

// wsClient is one connected websocket.
type wsClient struct {
	sid       string
	out       chan frame
	slow      chan struct{}
	closeSlow sync.Once
}

// push queues f, dropping the client when it is too far behind.
func (c *wsClient) push(f frame) {
	select {
	case c.out <- f:
	default:
		c.closeSlow.Do(func() { close(c.slow) })
	}
}

// hub holds the connected clients by session id; as in ComfyUI, a new
// connection with a client's id takes its messages from then on.
type hub struct {
	mu      sync.Mutex
	clients map[string]*wsClient
}

func (h *hub) add(c *wsClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[c.sid] = c
}

func (h *hub) remove(c *wsClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.clients[c.sid] == c {
		delete(h.clients, c.sid)
	}
}

// send queues f for client sid, if connected.
func (h *hub) send(sid string, f frame) {
	h.mu.Lock()
	c := h.clients[sid]
	h.mu.Unlock()
	if c != nil {
		c.push(f)
	}
}

// broadcast queues f for every client.
func (h *hub) broadcast(f frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.clients {
		c.push(f)
	}
}

// newSID makes a session id for a client that gave none.
func newSID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// handleWS is GET /ws?clientId=...: ComfyUI's event stream. The client
// gets a status message with its session id first, then the messages of
// the prompts it submitted with that client_id, and status messages when
// the queue changes and every KeepAlive (ComfyUI clients reconnect after
// some seconds of silence). The stream ends when this coordinator stops
// leading; the client reconnects to the leader.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered the request
	}
	sid := r.URL.Query().Get("clientId")
	if sid == "" {
		sid = newSID()
	}
	c := &wsClient{sid: sid, out: make(chan frame, wsBuffer), slow: make(chan struct{})}
	s.hub.add(c)
	defer s.hub.remove(c)
	ctx := conn.CloseRead(r.Context())
	write := func(f frame) bool {
		wctx, cancel := context.WithTimeout(ctx, wsWriteTimeout)
		defer cancel()
		return conn.Write(wctx, f.typ, f.data) == nil
	}
	if !write(textFrame("status", map[string]any{"status": s.queueInfo(ctx), "sid": sid})) {
		return
	}
	tick := time.NewTicker(s.opts.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.slow:
			conn.Close(websocket.StatusTryAgainLater, "too many messages waiting; see /history")
			return
		case f := <-c.out:
			if !write(f) {
				return
			}
		case <-tick.C:
			if !s.farm.Leading() {
				conn.Close(websocket.StatusGoingAway, "this coordinator no longer leads")
				return
			}
			if !write(textFrame("status", map[string]any{"status": s.queueInfo(ctx)})) {
				return
			}
		}
	}
}

// broadcastStatus tells every client the queue's length, as ComfyUI does
// whenever its queue changes.
func (s *Server) broadcastStatus(ctx context.Context) {
	s.hub.broadcast(textFrame("status", map[string]any{"status": s.queueInfo(ctx)}))
}
