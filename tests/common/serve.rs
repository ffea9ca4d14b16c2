//! A real `tokenctl serve` on a free loopback port, for the HTTP tests: started with this
//! test's database and clock, ready when `/healthz` answers, stopped (SIGTERM, then kill) when
//! dropped. Its stderr (the access log) is kept in a file the test can read.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_port, Env};

pub struct Serve {
    pub port: u16,
    pub child: Child,
    pub log: PathBuf,
}

impl Serve {
    /// `tokenctl serve --listen 127.0.0.1:PORT extra…`, waiting until it answers.
    pub fn start(env: &Env, extra: &[&str]) -> Serve {
        Serve::start_with(env, extra, |_| {})
    }

    /// Like `start`, with a chance to change the command (environment, say).
    pub fn start_with(
        env: &Env,
        extra: &[&str],
        adjust: impl Fn(&mut std::process::Command),
    ) -> Serve {
        for _attempt in 0..5 {
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let log = env.dir.path().join(format!("serve-{port}.log"));
            let mut args = vec!["serve", "--listen", &listen];
            args.extend_from_slice(extra);
            let mut cmd = env.cmd(&args);
            adjust(&mut cmd);
            let child = cmd
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut serve = Serve { port, child, log };
            if serve.wait_ready(Duration::from_secs(30)) {
                return serve;
            }
            // the port was taken between picking and binding: another try
            if !serve.log_text().contains("cannot listen") {
                panic!("tokenctl serve did not start:\n{}", serve.log_text());
            }
        }
        panic!("tokenctl serve found no free port in 5 tries");
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = ureq::get(&self.url("/healthz"))
                .timeout(Duration::from_secs(2))
                .call()
            {
                if r.status() == 200 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit (at most `within`); the exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.terminate(Duration::from_secs(5));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP answer: status, headers (lower-case names) and the body parsed as JSON (Null when
/// it is not JSON; `text` has it as it came).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub json: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` with an optional bearer token and JSON body; any status is an answer.
pub fn call(
    serve: &Serve,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    call_raw(
        serve,
        method,
        path,
        token,
        body.map(|b| b.to_string()).as_deref(),
    )
}

/// Like `call`, with the body as raw text (sent as application/json).
pub fn call_raw(
    serve: &Serve,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let mut req = ureq::request(method, &serve.url(path)).timeout(Duration::from_secs(60));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let result = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(b),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {path}: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = response.header(&n).unwrap_or("").to_string();
            (n.to_ascii_lowercase(), v)
        })
        .collect();
    let text = response.into_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        text,
        json,
    }
}

/// Creates a token with `scope` through the CLI; its secret.
pub fn token(env: &Env, name: &str, scope: &str) -> String {
    env.ok(&["tokens", "create", "--name", name, "--scope", scope])
        .trim()
        .to_string()
}
