//! `wsserver new --lang LANG NAME`: writes a plugin project from the
//! templates in the repository's `templates/` (built into the binary):
//! source, `build.sh`, `test.sh` (with `test_plugin.py`, a client check)
//! and a README.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The languages `wsserver new` writes projects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    C,
    Js,
    Python,
}

/// One file of a template: its path in the project and its text, with
/// `{{name}}`, `{{name_snake}}`, `{{sdk}}` and the README's fields to fill.
type File = (&'static str, &'static str);

struct Template {
    language: &'static str,
    /// Where the plugin's logic is.
    source: &'static str,
    /// What the build needs, for the README.
    toolchain: &'static str,
    files: &'static [File],
}

const COMMON: &[File] = &[
    (
        "README.md",
        include_str!("../../../../templates/common/README.md"),
    ),
    (
        "test_plugin.py",
        include_str!("../../../../templates/common/test_plugin.py"),
    ),
];

fn template(lang: Lang) -> Template {
    match lang {
        Lang::Rust => Template {
            language: "Rust",
            source: "src/lib.rs",
            toolchain: "Needs Rust with the wasm32-wasip2 target (build.sh adds it). \
                `cargo test` runs the unit tests natively; `cargo doc --open -p wsserver-sdk` \
                shows the SDK's documentation.",
            files: &[
                (
                    "Cargo.toml",
                    include_str!("../../../../templates/rust/Cargo.toml"),
                ),
                (
                    "src/lib.rs",
                    include_str!("../../../../templates/rust/src/lib.rs"),
                ),
                (
                    "build.sh",
                    include_str!("../../../../templates/rust/build.sh"),
                ),
                (
                    "test.sh",
                    include_str!("../../../../templates/rust/test.sh"),
                ),
                (".gitignore", "/target\n*.wasm\n"),
            ],
        },
        Lang::C => Template {
            language: "C",
            source: "main.c",
            toolchain: "Needs clang for wasm32-wasi, wasi-libc and wasm-component-ld: \
                `SDK/c/install-toolchain.sh` installs them (Debian clang-19, lld-19, \
                libclang-rt-19-dev-wasm32, wasi-libc; the wasm32-wasip2 rustup target).",
            files: &[
                ("main.c", include_str!("../../../../templates/c/main.c")),
                (
                    "wsserver-cc.args",
                    include_str!("../../../../templates/c/wsserver-cc.args"),
                ),
                ("build.sh", include_str!("../../../../templates/c/build.sh")),
                ("test.sh", include_str!("../../../../templates/c/test.sh")),
                (".gitignore", "*.wasm\n"),
            ],
        },
        Lang::Js => Template {
            language: "JavaScript",
            source: "main.js",
            toolchain: "Needs node and componentize-qjs: `SDK/js/install-toolchain.sh` \
                installs it from npm.",
            files: &[
                ("main.js", include_str!("../../../../templates/js/main.js")),
                (
                    "package.json",
                    include_str!("../../../../templates/js/package.json"),
                ),
                (
                    "build.sh",
                    include_str!("../../../../templates/js/build.sh"),
                ),
                ("test.sh", include_str!("../../../../templates/js/test.sh")),
                (".gitignore", "node_modules/\n*.wasm\n"),
            ],
        },
        Lang::Python => Template {
            language: "Python",
            source: "app.py",
            toolchain: "Needs componentize-py: `SDK/python/install-toolchain.sh` installs it \
                from PyPI.",
            files: &[
                (
                    "app.py",
                    include_str!("../../../../templates/python/app.py"),
                ),
                (
                    "pyproject.toml",
                    include_str!("../../../../templates/python/pyproject.toml"),
                ),
                (
                    "build.sh",
                    include_str!("../../../../templates/python/build.sh"),
                ),
                (
                    "test.sh",
                    include_str!("../../../../templates/python/test.sh"),
                ),
                (".gitignore", "__pycache__/\n*.wasm\n"),
            ],
        },
    }
}

/// The `sdk/` directory of the checkout this binary was built from, if it
/// is still there.
fn default_sdk() -> Option<PathBuf> {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk"))
        .canonicalize()
        .ok()
}

/// Writes the project `name` into `dir` (default `./NAME`); returns the
/// directory.
pub fn new_project(
    lang: Lang,
    name: &str,
    dir: Option<PathBuf>,
    sdk: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "project name {name:?}: use lowercase letters, digits, - and _, starting with a letter"
        );
    }
    let sdk = match sdk.or_else(default_sdk) {
        Some(sdk) => sdk
            .canonicalize()
            .with_context(|| format!("--sdk {}", sdk.display()))?,
        None => bail!(
            "the SDKs are not where this binary was built from: pass --sdk PATH, the sdk/ \
             directory of a wsserver checkout"
        ),
    };
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && dir.read_dir().map_or(true, |mut d| d.next().is_some()) {
        bail!("{} already exists and is not empty", dir.display());
    }
    let template = template(lang);
    let sdk_text = sdk.to_string_lossy();
    let lang_name = format!("{lang:?}").to_lowercase();
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{name_snake}}", &name.replace('-', "_"))
            .replace("{{language}}", template.language)
            .replace("{{lang}}", &lang_name)
            .replace("{{source}}", template.source)
            .replace(
                "{{toolchain}}",
                &template.toolchain.replace("SDK/", "{{sdk}}/"),
            )
            .replace("{{sdk}}", &sdk_text)
    };
    for (path, text) in COMMON.iter().chain(template.files) {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&target, fill(text))
            .with_context(|| format!("cannot write {}", target.display()))?;
        if path.ends_with(".sh") {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", target.display()))?;
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_project_with_names_and_the_sdk_filled_in() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("my-app");
        let sdk = tmp.path().to_path_buf();
        new_project(Lang::Rust, "my-app", Some(dir.clone()), Some(sdk.clone())).unwrap();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-app\""), "{manifest}");
        assert!(manifest.contains("crate-type = [\"cdylib\"]"), "{manifest}");
        let sdk_path = sdk.canonicalize().unwrap();
        assert!(manifest.contains(&format!("{}/rust", sdk_path.display())));
        let build = std::fs::read_to_string(dir.join("build.sh")).unwrap();
        assert!(build.contains("release/my_app.wasm"), "{build}");
        let mode = std::fs::metadata(dir.join("test.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(!readme.contains("{{"), "{readme}");
        // Never over an existing project.
        let again = new_project(Lang::C, "my-app", Some(dir), Some(sdk)).unwrap_err();
        assert!(again.to_string().contains("not empty"), "{again}");
        assert!(new_project(Lang::C, "My App", None, None).is_err());
    }
}
