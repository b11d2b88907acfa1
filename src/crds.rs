//! `tessera crds`: the CRDs of the engine and of the enabled providers, as YAML.
//! `crds/` in the repository is this command's output (`tessera crds --out-dir crds`).

use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use tessera_engine::provider::Provider;

/// A rendered CRD: its file name (`<group>_<plural>.yaml`) and YAML text.
pub struct CrdFile {
    pub file_name: String,
    pub yaml: String,
}

/// The CRDs of the engine and of `providers`.
pub fn definitions(providers: &[&dyn Provider]) -> Vec<CustomResourceDefinition> {
    let mut crds: Vec<CustomResourceDefinition> = tessera_engine::api::crds();
    for p in providers {
        crds.extend(p.crds());
    }
    crds
}

/// The CRDs of the engine and of `providers`, sorted by file name.
pub fn render(providers: &[&dyn Provider]) -> anyhow::Result<Vec<CrdFile>> {
    let crds = definitions(providers);
    let mut files = crds
        .iter()
        .map(|crd| {
            Ok(CrdFile {
                file_name: format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural),
                yaml: serde_yaml::to_string(crd)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    files.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(files)
}

/// All CRDs as one YAML stream.
pub fn stream(files: &[CrdFile]) -> String {
    files
        .iter()
        .map(|f| format!("---\n{}", f.yaml))
        .collect::<String>()
}

/// Writes one file per CRD into `dir`, removing CRD files that are no longer generated.
pub fn write_dir(dir: &Path, files: &[CrdFile]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let stale = path.extension().is_some_and(|e| e == "yaml")
            && !files
                .iter()
                .any(|f| path.file_name().is_some_and(|n| n == f.file_name.as_str()));
        if stale {
            std::fs::remove_file(&path)?;
        }
    }
    for f in files {
        std::fs::write(dir.join(&f.file_name), &f.yaml)?;
    }
    Ok(())
}

#[cfg(test)]
mod integer_bounds;

#[cfg(test)]
mod tests {
    use super::*;

    // crds/ holds the CRDs of the default features' providers.
    #[cfg(all(feature = "postgresql", feature = "vault"))]
    #[test]
    fn committed_crds_match_the_generated_ones() {
        // crds/, and the copy the controller's Helm chart installs from.
        for dir in ["crds", "charts/tessera/files/crds"] {
            assert_dir_matches(dir);
        }
    }

    #[cfg(all(feature = "postgresql", feature = "vault"))]
    fn assert_dir_matches(dir: &str) {
        let fix = format!("run `cargo run -- crds --out-dir {dir}` and commit the result");
        let dir = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join(dir);
        let files = render(crate::providers::ALL).unwrap();
        let mut committed: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}; {fix}", dir.display()))
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        committed.sort();
        let generated: Vec<String> = files.iter().map(|f| f.file_name.clone()).collect();
        assert_eq!(
            committed,
            generated,
            "{} has other files than `tessera crds` generates; {fix}",
            dir.display()
        );
        for f in &files {
            let on_disk = std::fs::read_to_string(dir.join(&f.file_name)).unwrap();
            assert!(
                on_disk == f.yaml,
                "{}/{} differs from `tessera crds`; {fix}",
                dir.display(),
                f.file_name
            );
        }
    }

    #[test]
    fn every_crd_has_tessera_category_and_a_dev_group() {
        for f in render(crate::providers::ALL).unwrap() {
            assert!(f.file_name.contains("tessera.dev_"), "{}", f.file_name);
            assert!(
                f.yaml.contains("- tessera"),
                "{} lacks category tessera",
                f.file_name
            );
        }
    }
}
