//! Headless Chromium end-to-end tests. The server runs in-process on port 0 (as in every
//! other test); a Node script under `tests/browser/` drives Debian's Chromium through
//! `playwright-core`. `tests/browser/install.sh` installs both on first use, so a fresh
//! machine needs nothing beyond the README's test command. Scripts get the server's URL
//! in `PARLEY_URL` and exit non-zero with a message when a check fails.
//!
//! `PARLEY_SCREENSHOTS=1 cargo test --test api browser` also refreshes the screenshots in
//! `docs/screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Backend, TestApp};

/// The longest one browser script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Run `tests/browser/install.sh` once per test process; every browser test waits for it.
fn ensure_installed() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let out = std::process::Command::new("bash")
        .arg(browser_dir().join("install.sh"))
        .output()
        .expect("run tests/browser/install.sh");
    assert!(
        out.status.success(),
        "tests/browser/install.sh failed (Chromium and playwright-core are needed):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    *done = true;
}

/// Run the browser script `tests/browser/<script>` against `app` with extra environment
/// variables; panics with the script's output when it fails or times out.
pub async fn run_script(script: &str, app: &TestApp, vars: &[(&str, String)]) {
    tokio::task::spawn_blocking(ensure_installed)
        .await
        .expect("installer thread");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(browser_dir().join(script))
        .current_dir(browser_dir())
        .env("PARLEY_URL", &app.address)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn node");
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {SCRIPT_TIMEOUT:?}"))
        .expect("node output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if std::env::var_os("TEST_LOG").is_some() {
        eprintln!("{script} stdout:\n{stdout}\n{script} stderr:\n{stderr}");
    }
    assert!(
        out.status.success(),
        "browser script {script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

/// A plain static site on its own port — another origin than Parley's — serving the given
/// `(path, html)` pages, as a customer's website would.
pub struct HostSite {
    /// `http://127.0.0.1:PORT` (use `localhost` in its place for yet another origin).
    pub url: String,
    handle: actix_web::dev::ServerHandle,
}

impl HostSite {
    /// Serve `pages` until dropped.
    pub fn start(pages: Vec<(String, String)>) -> HostSite {
        let pages = web::Data::new(pages);
        let server = HttpServer::new(move || {
            App::new().app_data(pages.clone()).default_service(web::to(
                |req: actix_web::HttpRequest, pages: web::Data<Vec<(String, String)>>| async move {
                    match pages.iter().find(|(p, _)| p == req.path()) {
                        Some((_, html)) => HttpResponse::Ok()
                            .content_type("text/html; charset=utf-8")
                            .body(html.clone()),
                        None => HttpResponse::NotFound().finish(),
                    }
                },
            ))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind host site");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        HostSite {
            url: format!("http://127.0.0.1:{port}"),
            handle,
        }
    }
}

impl Drop for HostSite {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}

#[actix_web::test]
async fn the_console_and_the_widget_loader_are_served_and_load_in_chromium() {
    let (_env, app) = TestApp::spawn(Backend::Sqlite).await;
    let host = HostSite::start(vec![(
        "/".into(),
        format!(
            "<!doctype html><title>Host</title><p>A customer's page</p>\
             <script async src=\"{}/widget.js\"></script>",
            app.address
        ),
    )]);
    run_script("smoke.mjs", &app, &[("HOST_URL", host.url.clone())]).await;
}

#[actix_web::test]
async fn assets_revalidate_with_their_etag_and_unknown_files_are_404() {
    let (_env, app) = TestApp::spawn(Backend::Sqlite).await;
    let res = app
        .client
        .get(format!("{}/widget.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(format!("{}/widget.js", app.address))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    for missing in [
        "/static/nope.js",
        "/static/../Cargo.toml",
        "/static/.hidden",
    ] {
        let res = app
            .client
            .get(format!("{}{missing}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{missing}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{missing}"
        );
    }
}

/// A TCP proxy in front of the server; `/cut` drops every connection and refuses new
/// ones until `/restore` (served on `control`).
pub struct Proxy {
    pub url: String,
    pub control: String,
    handles: Vec<actix_web::dev::ServerHandle>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cut = Arc::new(AtomicBool::new(false));
        let (kill, _) = tokio::sync::broadcast::channel::<()>(4);
        let (cut2, kill2) = (cut.clone(), kill.clone());
        actix_web::rt::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let mut killed = kill2.subscribe();
                actix_web::rt::spawn(async move {
                    let Ok(mut out) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = killed.recv() => {}
                    }
                });
            }
        });
        let state = web::Data::new((cut, kill));
        let server = HttpServer::new(move || {
            App::new()
                    .app_data(state.clone())
                    .route(
                        "/cut",
                        web::post().to(
                            |s: web::Data<(
                                Arc<AtomicBool>,
                                tokio::sync::broadcast::Sender<()>,
                            )>| async move {
                                s.0.store(true, Ordering::SeqCst);
                                let _ = s.1.send(());
                                HttpResponse::NoContent().finish()
                            },
                        ),
                    )
                    .route(
                        "/restore",
                        web::post().to(
                            |s: web::Data<(
                                Arc<AtomicBool>,
                                tokio::sync::broadcast::Sender<()>,
                            )>| async move {
                                s.0.store(false, Ordering::SeqCst);
                                HttpResponse::NoContent().finish()
                            },
                        ),
                    )
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let control = format!("http://127.0.0.1:{}", server.addrs()[0].port());
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Proxy {
            url,
            control,
            handles: vec![handle],
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for h in self.handles.drain(..) {
            actix_web::rt::spawn(async move { h.stop(false).await });
        }
    }
}
