package coordinator

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// SessionCookie is the cookie the dashboard logs in with. Its value is
// derived from the token (an HMAC), never the token itself, and it is
// HttpOnly and SameSite=Strict, so scripts cannot read it and other sites
// cannot send it.
const SessionCookie = "latentfarm_session"

// sessionTTL is how long a dashboard login lasts.
const sessionTTL = 12 * time.Hour

// sessionValue is the cookie value that the token grants.
func sessionValue(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("latentfarm dashboard session v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// queryTokenPaths are the only paths that accept the token as the "token"
// query parameter: a websocket client cannot set headers.
var queryTokenPaths = map[string]bool{"/ws": true, "/api/ws": true}

// auth refuses every request that does not carry the bearer token, the
// dashboard's session cookie, or (on queryTokenPaths) the token as a query
// parameter.
func (c *Coordinator) auth(next http.Handler) http.Handler {
	want := []byte("Bearer " + c.opts.Token)
	session := []byte(sessionValue(c.opts.Token))
	token := []byte(c.opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) == 1
		if ck, err := r.Cookie(SessionCookie); !ok && err == nil {
			ok = subtle.ConstantTimeCompare([]byte(ck.Value), session) == 1
		}
		if q := r.URL.Query().Get("token"); !ok && q != "" && queryTokenPaths[r.URL.Path] {
			ok = subtle.ConstantTimeCompare([]byte(q), token) == 1
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="latentfarm"`)
			writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "a valid bearer token is required", nil)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleLogin trades the token for the session cookie:
// POST /v1/session {"token": "..."} -> 204 with Set-Cookie.
func (c *Coordinator) handleLogin(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Token string `json:"token"`
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
	if err == nil {
		err = json.Unmarshal(data, &body)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "body must be {\"token\": \"...\"}", nil)
		return
	}
	if subtle.ConstantTimeCompare([]byte(body.Token), []byte(c.opts.Token)) != 1 {
		writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "wrong token", nil)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: sessionValue(c.opts.Token), Path: "/",
		MaxAge: int(sessionTTL / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// handleLogout clears the session cookie: DELETE /v1/session -> 204.
func (c *Coordinator) handleLogout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}
