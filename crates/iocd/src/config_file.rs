//! `iocd serve --config iocd.toml` and `iocd config check FILE`: a TOML file whose keys are
//! `serve`'s long flag names (`listen = "127.0.0.1:8080"`, `rate-limit = ["submit=100/1m"]`,
//! `emulator = true`).
//!
//! The flag list is not written twice: the file's keys are checked against clap's own
//! description of `serve` (every argument with a long name, the global `log-format` too), and
//! each value becomes that argument's default before clap parses. So clap's precedence gives
//! flags, then environment variables, then the file, then the built-in defaults, and every value
//! goes through the flag's own parser. Unknown keys are an error naming them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Arg, ArgAction, Command};

/// The environment variable naming a configuration file, as `--config` does.
pub const CONFIG_ENV: &str = "IOCD_CONFIG";

/// One key of the file, resolved to the argument it sets.
struct Setting {
    /// On `serve` (false: on the root command, a global flag).
    on_serve: bool,
    id: String,
    long: String,
    values: Vec<String>,
    flag: bool,
}

/// The argument of `serve` (or a global one) whose long name is `long`.
fn find_arg<'c>(root: &'c Command, long: &str) -> Option<(bool, &'c Arg)> {
    let serve = root.find_subcommand("serve")?;
    if let Some(arg) = serve.get_arguments().find(|a| a.get_long() == Some(long)) {
        return Some((true, arg));
    }
    root.get_arguments()
        .find(|a| a.get_long() == Some(long) && a.is_global_set())
        .map(|arg| (false, arg))
}

fn scalar(key: &str, value: &toml::Value) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            bail!("{key}: a list inside a list or a table is not a flag value")
        }
    })
}

/// Reads `path` and resolves its keys against `root`'s `serve`; every unknown key is named.
fn settings(root: &Command, path: &Path) -> anyhow::Result<Vec<Setting>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    let mut unknown = Vec::new();
    let mut settings = Vec::new();
    for (key, value) in &table {
        let Some((on_serve, arg)) = find_arg(root, key)
            .filter(|(_, a)| !["config", "help", "version"].contains(&a.get_id().as_str()))
        else {
            unknown.push(key.clone());
            continue;
        };
        let flag = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let multiple = matches!(arg.get_action(), ArgAction::Append);
        let values = match value {
            toml::Value::Array(items) if multiple => items
                .iter()
                .map(|item| scalar(key, item))
                .collect::<anyhow::Result<Vec<_>>>()?,
            toml::Value::Array(_) => {
                bail!("{}: {key} takes one value, not a list", path.display())
            }
            other => vec![scalar(key, other)?],
        };
        settings.push(Setting {
            on_serve,
            id: arg.get_id().to_string(),
            long: key.clone(),
            values,
            flag,
        });
    }
    if !unknown.is_empty() {
        bail!(
            "{}: unknown key{} {}: the keys are `iocd serve`'s long flag names (see `iocd serve --help`)",
            path.display(),
            if unknown.len() == 1 { "" } else { "s" },
            unknown
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(settings)
}

/// The file's settings as `serve` arguments (`--listen 127.0.0.1:8080`, `--emulator`).
fn as_arguments(settings: &[Setting]) -> Vec<String> {
    let mut args = Vec::new();
    for setting in settings {
        if setting.flag {
            if setting.values.first().map(String::as_str) == Some("true") {
                args.push(format!("--{}", setting.long));
            } else if setting.values.first().map(String::as_str) != Some("false") {
                // Let clap name the bad value.
                args.push(format!("--{}={}", setting.long, setting.values[0]));
            }
            continue;
        }
        for value in &setting.values {
            args.push(format!("--{}={value}", setting.long));
        }
    }
    args
}

/// Checks every value with its flag's parser, ignoring the environment (clap's error names the
/// flag and the value).
fn validate(root: &Command, settings: &[Setting], path: &Path) -> anyhow::Result<()> {
    let mut command = root.clone();
    let ids: Vec<String> = command
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    for id in ids {
        command = command.mut_arg(id, |a| a.env(None));
    }
    command = command.mut_subcommand("serve", |mut serve| {
        let ids: Vec<String> = serve
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        for id in ids {
            serve = serve.mut_arg(id, |a| a.env(None));
        }
        serve
    });
    let mut argv = vec!["iocd".to_string(), "serve".to_string()];
    argv.extend(as_arguments(settings));
    command.try_get_matches_from(argv).map(drop).map_err(|e| {
        let rendered = e.render().to_string();
        let first = rendered
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        anyhow::anyhow!("{}: {first}", path.display())
    })
}

fn leak(value: &str) -> &'static str {
    // Start-up configuration, read once per process.
    Box::leak(value.to_string().into_boxed_str())
}

/// `root` with the file's values as the defaults of their arguments.
fn with_defaults(mut root: Command, settings: &[Setting]) -> Command {
    for setting in settings {
        let values: Vec<&'static str> = setting.values.iter().map(|v| leak(v)).collect();
        let apply = move |arg: Arg| match values.as_slice() {
            [one] => arg.default_value(*one),
            many => arg.default_values(many.to_vec()),
        };
        if setting.on_serve {
            let id = setting.id.clone();
            root = root.mut_subcommand("serve", move |serve| serve.mut_arg(id, apply));
        } else {
            root = root.mut_arg(setting.id.clone(), apply);
        }
    }
    root
}

/// The configuration file named by `--config FILE` (or `--config=FILE`) in `args`, else by
/// [`CONFIG_ENV`]; only for `serve`.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    if !args.iter().any(|a| a == "serve") {
        return None;
    }
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `root` ready to parse `args`: with `serve --config`, the file's values as defaults.
pub fn command_for(root: Command, args: &[OsString]) -> anyhow::Result<Command> {
    let Some(path) = config_path(args) else {
        return Ok(root);
    };
    let settings = settings(&root, &path)?;
    validate(&root, &settings, &path)?;
    Ok(with_defaults(root, &settings))
}

/// `iocd config check FILE`: every key known, every value accepted by its flag; how many keys.
pub fn check(root: &Command, path: &Path) -> anyhow::Result<usize> {
    let settings = settings(root, path)?;
    validate(root, &settings, path)?;
    Ok(settings.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Command {
        Command::new("iocd")
            .arg(
                Arg::new("log_format")
                    .long("log-format")
                    .global(true)
                    .default_value("text"),
            )
            .subcommand(
                Command::new("serve")
                    .arg(
                        Arg::new("listen")
                            .long("listen")
                            .default_value("127.0.0.1:8080"),
                    )
                    .arg(
                        Arg::new("rate_limit")
                            .long("rate-limit")
                            .action(ArgAction::Append),
                    )
                    .arg(
                        Arg::new("emulator")
                            .long("emulator")
                            .action(ArgAction::SetTrue),
                    )
                    .arg(
                        Arg::new("max")
                            .long("max")
                            .value_parser(clap::value_parser!(u64)),
                    )
                    .arg(Arg::new("config").long("config")),
            )
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn values_become_defaults_below_flags() {
        let f = file("listen = \"0.0.0.0:9\"\nrate-limit = [\"submit=1/1m\", \"list=off\"]\nemulator = true\nmax = 7\nlog-format = \"json\"\n");
        let args: Vec<OsString> = ["iocd", "serve", "--config", f.path().to_str().unwrap()]
            .iter()
            .map(OsString::from)
            .collect();
        let command = command_for(root(), &args).unwrap();
        let m = command
            .clone()
            .try_get_matches_from(["iocd", "serve"])
            .unwrap();
        assert_eq!(m.get_one::<String>("log_format").unwrap(), "json");
        let serve = m.subcommand_matches("serve").unwrap();
        assert_eq!(serve.get_one::<String>("listen").unwrap(), "0.0.0.0:9");
        assert!(serve.get_flag("emulator"));
        assert_eq!(*serve.get_one::<u64>("max").unwrap(), 7);
        let limits: Vec<&String> = serve.get_many("rate_limit").unwrap().collect();
        assert_eq!(limits, ["submit=1/1m", "list=off"]);
        let m = command
            .try_get_matches_from(["iocd", "serve", "--listen", "127.0.0.1:1"])
            .unwrap();
        let serve = m.subcommand_matches("serve").unwrap();
        assert_eq!(serve.get_one::<String>("listen").unwrap(), "127.0.0.1:1");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let f = file("listn = \"x\"\ncolour = 1\nlisten = \"a\"\n");
        let error = check(&root(), f.path()).unwrap_err().to_string();
        assert!(
            error.contains("'colour'") && error.contains("'listn'"),
            "{error}"
        );
        let f = file("config = \"other.toml\"\n");
        assert!(check(&root(), f.path())
            .unwrap_err()
            .to_string()
            .contains("'config'"));
        let f = file("max = \"many\"\n");
        let error = check(&root(), f.path()).unwrap_err().to_string();
        assert!(error.contains("many") && error.contains("--max"), "{error}");
        let f = file("listen = [\"a\", \"b\"]\n");
        assert!(check(&root(), f.path())
            .unwrap_err()
            .to_string()
            .contains("one value"));
        let f = file("listen = \"127.0.0.1:1\"\nemulator = false\n");
        assert_eq!(check(&root(), f.path()).unwrap(), 2);
    }
}
