//! `iocd users` and `iocd apps create --public-client`: creating people, their passwords and
//! roles, on SQLite (the rules are the identity crate's; the server tests cover both backends).

use std::io::Write;
use std::process::{Output, Stdio};

use iocd_testkit::ScratchDatabase;
use serde_json::Value;

fn run(args: &[&str], database: &str, stdin: Option<&str>) -> Output {
    let mut child = crate::iocd()
        .command()
        .args(args)
        .env("IOCD_DATABASE_URL", database)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run iocd");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// `iocd users create` of one user; with `password` the password is given on stdin
/// (`--password-stdin`), without it iocd makes one up.
fn create_user(
    database: &str,
    tenant: &str,
    name: &str,
    upn: &str,
    role: &str,
    password: Option<&str>,
) -> Output {
    let mut args = vec![
        "users", "create", "--tenant", tenant, "--name", name, "--upn", upn, "--role", role,
    ];
    if password.is_some() {
        args.push("--password-stdin");
    }
    run(&args, database, password)
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "iocd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn refusal(output: &Output) -> String {
    assert!(!output.status.success(), "iocd should have refused");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn users_commands_create_list_change_and_delete() {
    let db = ScratchDatabase::sqlite();
    let url = db.url.as_str();
    let tenant = uuid::Uuid::new_v4().to_string();
    let public = json_of(&run(
        &[
            "apps",
            "create",
            "--tenant",
            &tenant,
            "--name",
            "CLI",
            "--public-client",
            "--redirect-uri",
            "http://localhost:3000/cb",
        ],
        url,
        None,
    ));
    assert_eq!(public["publicClient"], true);
    assert!(public.get("clientSecret").is_none(), "{public}");
    let refused = refusal(&run(
        &[
            "apps",
            "create",
            "--tenant",
            &tenant,
            "--name",
            "Web",
            "--role",
            "Ti.Read.All",
            "--redirect-uri",
            "http://app.example/cb",
        ],
        url,
        None,
    ));
    assert!(refused.contains("redirect URI"), "{refused}");

    let created = json_of(&create_user(
        url,
        &tenant,
        "Alice",
        "alice@contoso.example",
        "Iocd.Indicators.Manage",
        None,
    ));
    assert_eq!(created["upn"], "alice@contoso.example");
    assert!(created["password"].as_str().unwrap().len() >= 12);

    let chosen = json_of(&create_user(
        url,
        &tenant,
        "Bob",
        "bob@contoso.example",
        "Iocd.Indicators.Read",
        Some("a password Bob chose\n"),
    ));
    assert!(chosen.get("password").is_none(), "{chosen}");

    let duplicate = refusal(&create_user(
        url,
        &tenant,
        "Alice again",
        "ALICE@contoso.example",
        "Iocd.Admin",
        None,
    ));
    assert!(duplicate.contains("already has a user"), "{duplicate}");
    let bad_role = refusal(&create_user(
        url,
        &tenant,
        "Eve",
        "eve@contoso.example",
        "Ti.ReadWrite.All",
        None,
    ));
    assert!(bad_role.contains("Iocd.Indicators.Manage"), "{bad_role}");
    let short = refusal(&create_user(
        url,
        &tenant,
        "Eve",
        "eve@contoso.example",
        "Iocd.Admin",
        Some("short"),
    ));
    assert!(short.contains("password is too short"), "{short}");

    let listed = json_of(&run(&["users", "list", "--tenant", &tenant], url, None));
    let upns: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["upn"].as_str().unwrap())
        .collect();
    assert_eq!(upns, ["alice@contoso.example", "bob@contoso.example"]);
    assert!(!listed.to_string().contains("argon2"), "no hashes listed");

    let changed = json_of(&run(
        &[
            "users",
            "set-password",
            "--tenant",
            &tenant,
            "--upn",
            "alice@contoso.example",
        ],
        url,
        None,
    ));
    assert_ne!(changed["password"], created["password"]);

    json_of(&run(
        &[
            "users",
            "delete",
            "--tenant",
            &tenant,
            "--upn",
            "bob@contoso.example",
        ],
        url,
        None,
    ));
    let again = refusal(&run(
        &[
            "users",
            "delete",
            "--tenant",
            &tenant,
            "--upn",
            "bob@contoso.example",
        ],
        url,
        None,
    ));
    assert!(again.contains("no user"), "{again}");
}
