//! scripts/install.sh, crontab.example and `tokenctl completions`.

use std::process::Command;

#[test]
fn install_script_puts_binary_completions_and_cron_entries_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let cron = dir.path().join("cron.d-tokenctl");
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_tokenctl"), "--prefix"])
        .arg(&prefix)
        .arg("--cron-file")
        .arg(&cron)
        .args([
            "--database-url",
            "postgres://tokenctl@db.internal:5432/tokens",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = prefix.join("bin/tokenctl");
    let v = Command::new(&installed).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("tokenctl "));
    let bash = prefix.join("share/bash-completion/completions/tokenctl");
    let text = std::fs::read_to_string(&bash).unwrap();
    assert!(
        text.contains("monthly-reset") && text.contains("--ai-type"),
        "bash completions lack commands"
    );
    assert!(
        Command::new("bash")
            .arg("-n")
            .arg(&bash)
            .status()
            .unwrap()
            .success(),
        "bash completions do not parse"
    );
    assert!(
        std::fs::read_to_string(prefix.join("share/zsh/site-functions/_tokenctl"))
            .unwrap()
            .contains("#compdef tokenctl")
    );
    assert!(
        std::fs::read_to_string(prefix.join("share/fish/vendor_completions.d/tokenctl.fish"))
            .unwrap()
            .contains("complete -c tokenctl")
    );
    let entries = std::fs::read_to_string(&cron).unwrap();
    assert!(
        entries.contains("\n1 0 1 * * root tokenctl monthly-reset"),
        "{entries}"
    );
    assert!(
        entries.contains("\n*/5 * * * * root tokenctl monitor --once"),
        "{entries}"
    );
    assert!(
        entries.contains("\nTOKENCTL_DATABASE_URL=postgres://tokenctl@db.internal:5432/tokens\n"),
        "{entries}"
    );
    assert!(
        entries.contains(&format!("PATH={}:", prefix.join("bin").display())),
        "{entries}"
    );
}

#[test]
fn crontab_example_schedules_what_the_issue_asks() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crontab.example")).unwrap();
    let jobs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit() || c == '*'))
        .collect();
    assert!(jobs
        .iter()
        .any(
            |l| l.split_whitespace().take(5).collect::<Vec<_>>() == ["1", "0", "1", "*", "*"]
                && l.contains("tokenctl monthly-reset")
                && l.contains(">> /var/log/tokenctl/")
        ));
    assert!(jobs.iter().any(|l| l.starts_with("*/5")
        && l.contains("tokenctl monitor --once")
        && l.contains(">> /var/log/tokenctl/")));
    assert!(text
        .lines()
        .any(|l| l.starts_with("TOKENCTL_DATABASE_URL=")));
}

#[test]
fn completions_need_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokenctl"))
        .args(["completions", "zsh"])
        .env(
            "TOKENCTL_DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .env("XDG_DATA_HOME", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!dir.path().join("tokenctl").exists());
    let bad = Command::new(env!("CARGO_BIN_EXE_tokenctl"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
