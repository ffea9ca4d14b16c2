//! Issue 10: what a new user tripped on — through the built binary.

mod common;

use std::io::Read;
use std::process::Stdio;

use common::{Backend, Env};

/// Runs `args` with a standard output whose reader has already gone (`| head -0`, `| true`):
/// returns (exit code, stderr).
fn with_closed_stdout(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let mut child = env
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code(), err)
}

both!(a_closed_pipe_ends_the_command_quietly, |env| {
    env.ok(&["limits", "set", "--ai-type", "a", "--per-request", "100"]);
    let cases: [(&[&str], i32); 6] = [
        (&["prices"], 0),
        (&["status"], 0),
        (&["check", "--ai-type", "a", "--estimated-tokens", "5"], 0),
        (
            &[
                "check",
                "--ai-type",
                "a",
                "--estimated-tokens",
                "500",
                "--json",
            ],
            3,
        ),
        (
            &[
                "record",
                "--ai-type",
                "a",
                "--tokens-in",
                "1",
                "--tokens-out",
                "1",
            ],
            0,
        ),
        (&["completions", "bash"], 0),
    ];
    let rounds = if env.backend == Backend::Sqlite {
        50
    } else {
        10
    };
    for (args, code) in cases {
        for _ in 0..rounds {
            let (got, err) = with_closed_stdout(&env, args);
            assert_eq!(got, Some(code), "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        }
    }
    // every record still counted
    assert_eq!(
        env.scalar("SELECT request_count FROM token_usage WHERE ai_type = 'a'"),
        rounds
    );
});
