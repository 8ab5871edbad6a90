//! # The dashboard: one static page showing the cluster live
//!
//! [`router`] serves `GET /` (the page), `GET /dashboard.js` and `GET /dashboard.css`, all
//! embedded in the binary (no CDN, no external fonts: it works offline). The gateway serves
//! it; a node can serve it too by merging [`router`] into its own router.
//!
//! The page finds out what it is talking to: when `GET /cluster` answers (a gateway, see
//! the gateway's `GET /cluster`) it shows every node; otherwise it shows the node it was loaded
//! from, from that node's `GET /counter`, `GET /counters`, `GET /peers` and `GET /metrics`.
//! Every 500 ms it shows each node's value, its peers and their state, frames per second in
//! and out (rates of `tally_frames_in_total` / `tally_frames_out_total` between two polls; `–`
//! without `/metrics`), and whether the cluster has converged (every healthy node reports the
//! same value). Its buttons `POST /increment` and `/decrement` with `{"by": N}` to the server
//! it was loaded from.
//!
//! Named counters: one table row per counter — at most the first 100 names in byte order, as
//! `/cluster` carries them, with "showing the first 100 of N" when there are more — with its
//! value (while the nodes differ, the highest), a converged mark (every healthy node holds it
//! with the same value; "single node" on a node's own page), each node's value of it, and
//! −1 / +1 buttons (`POST /counters/{NAME}/decrement|increment` with `{"by": 1}`). A small form
//! increments any name, which creates a new counter; the page checks the name against
//! `[A-Za-z0-9._-]{1,64}` before sending (the node checks again), and refuses `.` and `..`,
//! valid names that a browser cannot put in a URL path (it resolves them as dot segments; the
//! gateway refuses them too).
//!
//! Stable hooks for tests: `#inc`, `#dec`, `#by`, `#cluster-value`, `#convergence`
//! (`data-converged="true"|"false"`), `#action-result`, one `[data-node-url]` element per
//! node holding `[data-role=value]` with the value in `data-value`, and `body[data-mode]`
//! (`gateway` or `node`). Named counters: `#counter-name`, `#counter-by`, `#counter-inc`,
//! `#counter-result` (`data-ok`, and `data-seq` counting the writes started), one
//! `#counters-body tr[data-counter=NAME]` per counter holding `[data-role=counter-value]`
//! (`data-value`), `[data-role=counter-converged]` (`data-converged="true"|"false"|""`), one
//! `[data-role=counter-node][data-node=URL]` per node (`data-value`, empty when it lacks the
//! counter) and `button[data-action=increment|decrement]`; `#counters-convergence`,
//! `#counters-more`.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// The page.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its script.
pub const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
/// Its style sheet.
pub const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
}

/// `GET /`, `GET /dashboard.js`, `GET /dashboard.css`, for any router state `S`. It has no
/// fallback, so it `.merge()`s into a router that has one (merge it before calling
/// `method_not_allowed_fallback`, so a wrong method on `/` gets that router's JSON 405).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", DASHBOARD_JS) }),
        )
        .route(
            "/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", DASHBOARD_CSS) }),
        )
}
