//! Reading YAML (or JSON) files of Kubernetes objects: multi-document streams, `kind: List`
//! wrappers, and directories searched recursively.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Problem;

/// One Kubernetes object read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The file, as given (or found under a given directory).
    pub file: String,
    /// The line (1-based) where the object's YAML document starts.
    pub line: usize,
    /// The object.
    pub object: Value,
}

impl Document {
    /// The object's `apiVersion`, or `""`.
    pub fn api_version(&self) -> &str {
        str_at(&self.object, "/apiVersion")
    }

    /// The object's `kind`, or `""`.
    pub fn kind(&self) -> &str {
        str_at(&self.object, "/kind")
    }

    /// The object's `metadata.name`, or `""`.
    pub fn name(&self) -> &str {
        str_at(&self.object, "/metadata/name")
    }

    /// The API group of the object's `apiVersion` (`""` for the core group).
    pub fn group(&self) -> &str {
        group_of(self.api_version())
    }

    /// `Kind/name` (`Kind/namespace/name` for namespaced objects), for messages.
    pub fn resource(&self) -> String {
        let kind = if self.kind().is_empty() {
            "object"
        } else {
            self.kind()
        };
        let name = if self.name().is_empty() {
            "<unnamed>"
        } else {
            self.name()
        };
        match str_at(&self.object, "/metadata/namespace") {
            "" => format!("{kind}/{name}"),
            ns => format!("{kind}/{ns}/{name}"),
        }
    }

    /// A problem with this object; `resource` is appended to [`Document::resource`] (e.g.
    /// ` resources[1] 'database' patch 2`).
    pub fn problem(&self, resource: &str, message: impl Into<String>) -> Problem {
        Problem::error(
            &self.file,
            Some(self.line),
            format!("{}{resource}", self.resource()),
            message,
        )
    }
}

/// The string at `pointer` in `value`, or `""`.
pub(crate) fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The group of an apiVersion: `""` for `v1`, `apps` for `apps/v1`.
pub(crate) fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// The objects in the YAML stream `text` of `file`. Empty documents (only comments) are
/// skipped; `kind: List` objects are replaced by their items.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Document>, Problem> {
    let mut out = Vec::new();
    for (line, raw_start, chunk) in split_stream(text) {
        let value: Value = serde_yaml::from_str(&chunk).map_err(|e| {
            let at = e.location().map_or(line, |l| raw_start + l.line() - 1);
            Problem::error(file, Some(at), "", format!("cannot parse YAML: {e}"))
        })?;
        match value {
            Value::Null => {}
            Value::Object(_) => push_object(&mut out, file, line, value)?,
            _ => {
                return Err(Problem::error(
                    file,
                    Some(line),
                    "",
                    "a document must be a Kubernetes object (a mapping with apiVersion and kind)",
                ));
            }
        }
    }
    Ok(out)
}

fn push_object(
    out: &mut Vec<Document>,
    file: &str,
    line: usize,
    value: Value,
) -> Result<(), Problem> {
    let is_list = value.get("kind").and_then(Value::as_str) == Some("List")
        && value.get("items").is_some_and(Value::is_array);
    if !is_list {
        out.push(Document {
            file: file.to_string(),
            line,
            object: value,
        });
        return Ok(());
    }
    if let Some(Value::Array(items)) = value.get("items") {
        for item in items {
            if !item.is_object() {
                return Err(Problem::error(
                    file,
                    Some(line),
                    "List",
                    "items must be Kubernetes objects",
                ));
            }
            out.push(Document {
                file: file.to_string(),
                line,
                object: item.clone(),
            });
        }
    }
    Ok(())
}

/// Splits a YAML stream at `---` lines (and after `...` lines), returning each
/// document's first line with content, the line its text starts at (both 1-based) and
/// its text. A document marker at column 0 ends
/// the document even inside a block scalar, as YAML specifies.
fn split_stream(text: &str) -> Vec<(usize, usize, String)> {
    let mut docs = Vec::new();
    let mut start = 1;
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let is_start = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        let is_end = line == "..." || line.starts_with("... ");
        if is_start || is_end {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 1;
            if let Some(rest) = line.strip_prefix("---").filter(|r| !r.trim().is_empty()) {
                // Content on the marker line, e.g. `--- !tag` or `--- {a: 1}`.
                current.push_str(rest);
                current.push('\n');
            } else {
                start = i + 2;
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push((start, current));
    // Report the first line with content, not a leading comment or blank line.
    docs.into_iter()
        .map(|(start, text)| {
            let skip = text
                .lines()
                .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
                .count();
            (start + skip, start, text)
        })
        .collect()
}

/// Reads the objects of one file.
pub fn read_file(path: &Path) -> Result<Vec<Document>, Problem> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Problem::error(&file, None, "", format!("cannot read file: {e}")))?;
    parse_documents(&file, &text)
}

/// The YAML and JSON files at `path`: the file itself, or the `.yaml`, `.yml` and `.json`
/// files under the directory (recursively, in name order, skipping hidden entries).
pub fn files_at(path: &Path) -> Result<Vec<PathBuf>, Problem> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Problem::error(
            &path.display().to_string(),
            None,
            "",
            format!("cannot read: {e}"),
        )
    })?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| {
            Problem::error(
                &path.display().to_string(),
                None,
                "",
                format!("cannot read directory: {e}"),
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            out.extend(files_at(&entry)?);
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Reads every object at `paths` (files or directories). Files that cannot be read or
/// parsed become problems; the others are read all the same.
pub fn read_paths(paths: &[PathBuf]) -> (Vec<Document>, usize, Vec<Problem>) {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    let mut files = 0;
    for path in paths {
        match files_at(path) {
            Ok(found) => {
                for file in found {
                    files += 1;
                    match read_file(&file) {
                        Ok(d) => docs.extend(d),
                        Err(p) => problems.push(p),
                    }
                }
            }
            Err(p) => problems.push(p),
        }
    }
    (docs, files, problems)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn multi_document_streams_give_each_object_with_its_start_line() {
        let text = "# header comment\napiVersion: v1\nkind: A\n---\n\n# note\napiVersion: v1\nkind: B\n---\n# only a comment\n...\n--- {apiVersion: v1, kind: C}\n";
        let docs = parse_documents("f.yaml", text).expect("parses");
        let got: Vec<(&str, usize)> = docs.iter().map(|d| (d.kind(), d.line)).collect();
        assert_eq!(got, [("A", 2), ("B", 7), ("C", 12)]);
    }

    #[test]
    fn lists_are_unwrapped_and_scalars_are_refused() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: A}\n- {apiVersion: v1, kind: B}\n";
        let docs = parse_documents("f.yaml", text).expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].object, json!({"apiVersion": "v1", "kind": "B"}));
        let err = parse_documents("f.yaml", "---\njust text\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.yaml:2: a document must be a Kubernetes object (a mapping with apiVersion and kind)"
        );
    }

    #[test]
    fn yaml_errors_name_the_file_and_line() {
        let err = parse_documents("f.yaml", "a: 1\n---\nb: [\n").unwrap_err();
        assert!(err.to_string().starts_with("f.yaml:"), "{err}");
        assert!(err.to_string().contains("cannot parse YAML"), "{err}");
    }
}
