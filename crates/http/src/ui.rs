//! The web UI: one page of plain HTML, CSS and JavaScript modules (no framework, no build
//! step) that talks to the management API like any other client, with HTTP basic auth.
//! Every asset is compiled into the binary, so the UI needs nothing at run time.
//!
//! Assets are revalidated on every load (`no-cache` with an `ETag`): an upgraded broker is
//! never shown with a stale script, and an unchanged one answers 304 with no body.

use std::sync::LazyLock;

use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::AppState;

struct Asset {
    /// The path under `/static/`.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/format.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/list.js", JS),
    asset!("js/forms.js", JS),
    asset!("js/session.js", JS),
    asset!("js/pages/overview.js", JS),
    asset!("js/pages/queues.js", JS),
    asset!("js/pages/exchanges.js", JS),
    asset!("js/pages/connections.js", JS),
    asset!("js/pages/admin.js", JS),
    asset!("js/pages/policies.js", JS),
];

/// Scripts, styles and connections only from this origin: the page has no inline script, and
/// nothing it renders can load or run anything else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

/// A strong validator for each asset: a 64-bit FNV-1a hash of its bytes, computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    std::iter::once(&INDEX)
        .chain(ASSETS)
        .map(|a| {
            let hash = a.body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
            HeaderValue::try_from(format!("\"{hash:016x}\"")).expect("hex is a valid header")
        })
        .collect()
});

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/static/{*path}", get(static_asset))
        .route("/favicon.ico", get(favicon))
}

async fn index(headers: HeaderMap) -> Response {
    let mut r = serve(&INDEX, &ETAGS[0], &headers);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

async fn static_asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.path == path) {
        Some(i) => serve(&ASSETS[i], &ETAGS[i + 1], &headers),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Not Found",
        )
            .into_response(),
    }
}

/// Browsers ask for `/favicon.ico` whatever the page says.
async fn favicon(headers: HeaderMap) -> Response {
    let i = ASSETS
        .iter()
        .position(|a| a.path == "favicon.svg")
        .expect("the favicon is an asset");
    serve(&ASSETS[i], &ETAGS[i + 1], &headers)
}

fn serve(asset: &Asset, etag: &HeaderValue, request: &HeaderMap) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim() == etag.to_str().unwrap_or(""))
        });
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// A 401 with `WWW-Authenticate: Basic` makes a browser open its own login dialog, even for
/// a script's `fetch`, over the web UI's login form. The UI marks its requests with
/// `X-Requested-With`, and their 401s come without the challenge (other clients, which send
/// no such header, still get it, as RabbitMQ sends it).
pub async fn no_challenge_for_scripts(request: Request, next: Next) -> Response {
    let scripted = request.headers().contains_key("x-requested-with");
    let mut response = next.run(request).await;
    if scripted {
        response.headers_mut().remove(header::WWW_AUTHENTICATE);
    }
    response
}
