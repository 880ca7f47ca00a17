//! The command line around [`convert`]: reading files, folders and standard input, writing
//! the output, the report and the exit code.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::rules::{self, Class};
use super::{convert, text, Outcome};

/// `arnsync convert` as the command line gives it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Files and folders; none or `-`: standard input.
    pub paths: Vec<PathBuf>,
    /// Where to write the converted documents; `None`: standard output.
    pub output: Option<PathBuf>,
    /// Write nothing; only report and set the exit code.
    pub check: bool,
}

/// All documents converted (or kept).
pub const EXIT_OK: u8 = 0;
/// Some document could not be carried over; it was left out of the output.
pub const EXIT_LEFT_OUT: u8 = 1;
/// Usage, I/O or YAML syntax error: nothing was written.
pub const EXIT_ERROR: u8 = 2;

/// Runs `arnsync convert`; returns the exit code.
pub fn run(
    opts: &Options,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    let fail = |stderr: &mut dyn Write, errors: &[String]| {
        for e in errors {
            let _ = writeln!(stderr, "arnsync convert: {e}");
        }
        EXIT_ERROR
    };
    let sources = match read_inputs(&opts.paths, stdin) {
        Ok(s) => s,
        Err(errors) => return fail(stderr, &errors),
    };
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for (name, body) in &sources {
        match text::parse(body) {
            Ok(docs) => parsed.push((name, docs)),
            Err(e) => errors.push(format!("{name}: not valid YAML: {e}")),
        }
    }
    if !errors.is_empty() {
        return fail(stderr, &errors);
    }
    let mut tally = Tally::default();
    for (name, docs) in parsed {
        for (i, doc) in docs.into_iter().enumerate() {
            let at = format!("{name}#{}", i + 1);
            match doc.value {
                Ok(value) => match list_items(&value) {
                    Some(items) => {
                        for (j, item) in items.iter().enumerate() {
                            tally.add(&format!("{at}.items[{j}]"), item.clone(), None, stderr);
                        }
                    }
                    None => tally.add(&at, value, doc.text.as_deref(), stderr),
                },
                Err(e) => {
                    tally.left_out += 1;
                    let what = if e.contains("duplicate entry") {
                        "remove the repetition (kubectl would silently keep the last one)"
                    } else {
                        "fix the document"
                    };
                    let _ = writeln!(stderr, "{at} ?: not valid YAML: {e}: {what}");
                }
            }
        }
    }
    let Tally {
        out,
        converted,
        kept,
        left_out,
    } = tally;
    if left_out > 0 {
        let verb = if opts.check {
            "would be left out"
        } else {
            "left out"
        };
        let _ = writeln!(
            stderr,
            "arnsync convert: {left_out} document(s) {verb} (see above); {converted} converted, {kept} unchanged"
        );
    }
    if !opts.check {
        let written = match &opts.output {
            Some(path) => std::fs::write(path, &out)
                .map_err(|e| format!("{}: cannot write: {e}", path.display())),
            None => stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| format!("cannot write to standard output: {e}")),
        };
        if let Err(e) = written {
            return fail(stderr, &[e]);
        }
    }
    if left_out > 0 {
        EXIT_LEFT_OUT
    } else {
        EXIT_OK
    }
}

/// Documents named `FILE#INDEX`, and the report lines of those left out.
pub type Documents = (Vec<(String, Value)>, Vec<String>);

/// Every document of `paths` (files and folders, as `arnsync convert` reads them) as arnsync
/// would see it after conversion, named `FILE#INDEX`: ESO objects converted, other documents
/// kept. Documents that do not convert come back as one line each of the report `convert`
/// writes. Err: what stops reading (I/O, YAML syntax).
pub fn converted_documents(paths: &[PathBuf]) -> Result<Documents, Vec<String>> {
    let sources = read_inputs(paths, &mut std::io::stdin().lock())?;
    let mut docs = Vec::new();
    let mut refused = Vec::new();
    let mut errors = Vec::new();
    for (name, body) in &sources {
        let parsed = match text::parse(body) {
            Ok(parsed) => parsed,
            Err(e) => {
                errors.push(format!("{name}: not valid YAML: {e}"));
                continue;
            }
        };
        for (i, doc) in parsed.into_iter().enumerate() {
            let at = format!("{name}#{}", i + 1);
            let value = match doc.value {
                Ok(v) => v,
                Err(e) => {
                    refused.push(format!("{at} ?: not valid YAML: {e}"));
                    continue;
                }
            };
            let items = match list_items(&value) {
                Some(items) => items
                    .iter()
                    .enumerate()
                    .map(|(j, item)| (format!("{at}.items[{j}]"), item.clone()))
                    .collect(),
                None => vec![(at, value)],
            };
            for (at, item) in items {
                let who = identity(&item);
                match convert(item) {
                    Outcome::Converted(v) | Outcome::Kept(v) => docs.push((at, v)),
                    Outcome::Empty => {}
                    Outcome::Refused(problems) => {
                        refused.extend(problems.iter().map(|p| format!("{at} {who}: {p}")))
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok((docs, refused))
    } else {
        Err(errors)
    }
}

/// The output so far and what became of the documents.
#[derive(Default)]
struct Tally {
    out: String,
    converted: usize,
    kept: usize,
    left_out: usize,
}

impl Tally {
    /// Converts one document; `at` names it in the report (`FILE#INDEX`).
    fn add(&mut self, at: &str, value: Value, text: Option<&str>, stderr: &mut dyn Write) {
        let who = identity(&value);
        let written = match convert(value) {
            Outcome::Converted(v) => {
                self.converted += 1;
                v
            }
            Outcome::Kept(v) => {
                self.kept += 1;
                v
            }
            Outcome::Empty => return,
            Outcome::Refused(problems) => {
                self.left_out += 1;
                for p in problems {
                    let _ = writeln!(stderr, "{at} {who}: {p}");
                }
                return;
            }
        };
        self.out.push_str("---\n");
        self.out.push_str(&text::render(&written, text));
    }
}

/// The items of a `kind: List` (what `kubectl get -o yaml` writes) that holds ESO objects;
/// they are converted one by one and written as separate documents.
fn list_items(doc: &Value) -> Option<&Vec<Value>> {
    if doc.get("apiVersion")? != "v1" || doc.get("kind")? != "List" {
        return None;
    }
    let items = doc.get("items")?.as_sequence()?;
    let eso = |item: &Value| {
        let s = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
        rules::classify(s("apiVersion"), s("kind")) != Class::Keep
    };
    items.iter().any(eso).then_some(items)
}

/// `Kind namespace/name` of a document, `?` for what it does not say.
fn identity(doc: &Value) -> String {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let kind = s(doc.get("kind")).unwrap_or_else(|| "?".into());
    let meta = doc.get("metadata");
    let name = s(meta.and_then(|m| m.get("name"))).unwrap_or_else(|| "?".into());
    match s(meta.and_then(|m| m.get("namespace"))) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Every input as (name, text): standard input, files, and the `*.yaml` / `*.yml` files
/// under folders (recursively, sorted; hidden entries skipped).
fn read_inputs(
    paths: &[PathBuf],
    stdin: &mut dyn Read,
) -> Result<Vec<(String, String)>, Vec<String>> {
    let stdin_only = [PathBuf::from("-")];
    let paths = if paths.is_empty() {
        &stdin_only[..]
    } else {
        paths
    };
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    let mut read_stdin = false;
    for path in paths {
        if path.as_os_str() == "-" {
            if !read_stdin {
                read_stdin = true;
                let mut body = String::new();
                match stdin.read_to_string(&mut body) {
                    Ok(_) => sources.push(("<stdin>".to_string(), body)),
                    Err(e) => errors.push(format!("standard input: {e}")),
                }
            }
            continue;
        }
        let files = if path.is_dir() {
            let mut files = Vec::new();
            if let Err(e) = yaml_files(path, &mut files) {
                errors.push(e);
            }
            if files.is_empty() {
                errors.push(format!("{}: holds no *.yaml or *.yml file", path.display()));
            }
            files.sort();
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(body) => sources.push((file.display().to_string(), body)),
                Err(e) => errors.push(format!("{}: {e}", file.display())),
            }
        }
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(errors)
    }
}

fn yaml_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // Symbolic links to folders are not followed (no loops); links to files are.
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            yaml_files(&path, files)?;
        } else if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    Ok(())
}
