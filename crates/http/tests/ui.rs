//! The web UI's assets over real HTTP: content types, cache validation, every script module
//! the page imports is served, and the API's 401s spare the UI the browser's own login dialog.
//! (The pages themselves are tested in a browser: tests/ui at the workspace root.)

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::watch;
use warren_broker::{Broker, BrokerConfig};
use warren_http::{AppState, HttpConfig};

struct Server {
    _rt: Runtime,
    base: String,
    agent: ureq::Agent,
    _stop: watch::Sender<bool>,
}

struct Resp {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn start() -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let port = rt.block_on(async {
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = http.local_addr().unwrap().port();
        let state = AppState::new(Broker::new(BrokerConfig::default()), HttpConfig::default());
        tokio::spawn(warren_http::serve(http, state, stop_rx));
        port
    });
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    Server {
        _rt: rt,
        base: format!("http://127.0.0.1:{port}"),
        agent,
        _stop: stop,
    }
}

impl Server {
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut r = req.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        Resp {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.body_mut().read_to_string().unwrap_or_default(),
        }
    }
}

/// `./x.js` or `../x.js` relative to the module at `from` (a path under /static/).
fn resolve(from: &str, relative: &str) -> String {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for seg in relative.split('/') {
        match seg {
            "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[test]
fn index_and_assets_have_their_types_and_validators() {
    let s = start();
    let index = s.get("/", &[]);
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(index.header("cache-control"), "no-cache");
    assert!(index
        .header("content-security-policy")
        .contains("script-src 'self'"));
    assert_eq!(index.header("x-content-type-options"), "nosniff");
    let etag = index.header("etag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let again = s.get("/", &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(s.get("/", &[("If-None-Match", "\"other\"")]).status, 200);

    for (path, ty) in [
        ("/static/app.css", "text/css; charset=utf-8"),
        ("/static/js/app.js", "text/javascript; charset=utf-8"),
        ("/static/favicon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let r = s.get(path, &[]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), ty, "{path}");
        assert_eq!(r.header("cache-control"), "no-cache", "{path}");
        assert!(!r.header("etag").is_empty(), "{path}");
    }
    assert_eq!(s.get("/static/nope.js", &[]).status, 404);
    assert_eq!(s.get("/static/../Cargo.toml", &[]).status, 404);
}

#[test]
fn every_module_the_page_imports_is_served() {
    let s = start();
    let index = s.get("/", &[]).body;
    let src = regex::Regex::new(r#"(?:src|href)="static/([^"]+)""#).unwrap();
    let mut todo: Vec<String> = src
        .captures_iter(&index)
        .map(|c| c[1].to_string())
        .collect();
    assert!(todo.iter().any(|p| p == "js/app.js"), "{todo:?}");
    let mut seen = BTreeSet::new();
    while let Some(path) = todo.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let r = s.get(&format!("/static/{path}"), &[]);
        assert_eq!(r.status, 200, "/static/{path}");
        if path.ends_with(".js") {
            assert!(r.header("content-type").starts_with("text/javascript"));
            // `import ... from './x.js'` and `export ... from '../y.js'`.
            for (at, _) in r.body.match_indices(" from '") {
                let rest = &r.body[at + 7..];
                let target = &rest[..rest.find('\'').unwrap_or(0)];
                if target.starts_with("./") || target.starts_with("../") {
                    todo.push(resolve(&path, target));
                }
            }
        }
    }
    // The whole app, pages included, is reachable from the page.
    for page in ["overview", "queues", "exchanges", "connections", "admin"] {
        assert!(
            seen.contains(&format!("js/pages/{page}.js")),
            "{page}: {seen:?}"
        );
    }
}

#[test]
fn the_ui_gets_its_401s_without_a_basic_challenge() {
    let s = start();
    let bad = ("Authorization", "Basic Z3Vlc3Q6bm9wZQ=="); // guest:nope
    let plain = s.get("/api/overview", &[bad]);
    assert_eq!(plain.status, 401);
    assert_eq!(
        plain.header("www-authenticate"),
        "Basic realm=\"RabbitMQ Management\""
    );
    let scripted = s.get(
        "/api/overview",
        &[bad, ("X-Requested-With", "XMLHttpRequest")],
    );
    assert_eq!(scripted.status, 401);
    assert!(scripted.headers.get("www-authenticate").is_none());
    assert!(scripted.body.contains("not_authorised"));
}
