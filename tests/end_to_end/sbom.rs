//! The SBOM every packed file carries (docs/sbom.md), checked by the reference tools rather
//! than by pyferry's own reading: CycloneDX 1.6 by `cyclonedx-python-lib`'s strict validator,
//! SPDX 2.3 by `spdx-tools` (both pinned, `tests/sbom/requirements.txt`). Its components are
//! compared with `pyferry inspect --json`, with the wheels the resolver chose (uv, asked
//! separately) and with the bytes in the file; real wheels (numpy's vendored libraries,
//! Pillow's PEP 770 SBOMs, requests' dependencies), real executables and pyz files, run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use pyferry_tests::sbom_tools::validate;
use pyferry_tests::{
    cache_wheels, pyferry, pyferry_command, run, wheel_cache, workspace_root, write_tree, Finished,
    Scratch,
};
use serde_json::Value;

/// numpy (vendored OpenBLAS and gfortran in `numpy.libs/`), Pillow 13 (auditwheel's SBOM and
/// its own in `.dist-info/sboms/`), requests (four dependencies).
const REQUIREMENTS: &[&str] = &["numpy==2.4.6", "pillow==13.0.0", "requests==2.32.3"];

/// `pyferry pack ARGS -o OUT` offline from the wheel cache, without `SOURCE_DATE_EPOCH`.
fn pack_offline(args: &[&str], output: &Path) -> Finished {
    let mut command = pyferry_command(["pack"]);
    command
        .args(args)
        .arg("-o")
        .arg(output)
        .arg("--no-index")
        .arg("--find-links")
        .arg(wheel_cache())
        .env_remove("SOURCE_DATE_EPOCH");
    run(&mut command)
}

/// `pyferry inspect --sbom [--format FORMAT] FILE`, which must succeed.
fn inspect_sbom(file: &Path, format: Option<&str>) -> String {
    let mut command = pyferry_command(["inspect", "--sbom"]);
    if let Some(format) = format {
        command.args(["--format", format]);
    }
    run(command.arg(file)).success().stdout
}

#[track_caller]
fn assert_valid(format: &str, file: &Path) {
    let checked = validate(format, file);
    assert_eq!(
        checked.code,
        Some(0),
        "{format} validation of {}:\n{}",
        file.display(),
        checked.stderr
    );
}

#[track_caller]
fn assert_error_line(finished: &Finished, needle: &str) {
    assert_eq!(finished.code, Some(2), "{finished:#?}");
    let lines: Vec<&str> = finished.stderr.lines().collect();
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("pyferry: error: ") && last.contains(needle),
        "`{needle}` not in: {}",
        finished.stderr
    );
    assert!(!finished.stderr.contains("panicked"), "{}", finished.stderr);
}

/// PEP 503 normalization.
fn normalize(name: &str) -> String {
    let mut normalized = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !normalized.ends_with('-') {
                normalized.push('-');
            }
        } else {
            normalized.push(c.to_ascii_lowercase());
        }
    }
    normalized
}

/// The values of a component's properties named `name`.
fn properties<'a>(component: &'a Value, name: &str) -> Vec<&'a str> {
    component["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|property| property["name"] == name)
        .filter_map(|property| property["value"].as_str())
        .collect()
}

fn components(bom: &Value) -> &Vec<Value> {
    bom["components"].as_array().expect("components")
}

/// The distributions of a document: top-level components with a `pkg:pypi` purl.
fn distributions(bom: &Value) -> BTreeMap<String, &Value> {
    components(bom)
        .iter()
        .filter(|component| {
            component["purl"]
                .as_str()
                .is_some_and(|purl| purl.starts_with("pkg:pypi/"))
        })
        .map(|component| {
            (
                normalize(component["name"].as_str().expect("a name")),
                component,
            )
        })
        .collect()
}

/// `ref` → `dependsOn` of a document.
fn graph(bom: &Value) -> BTreeMap<String, BTreeSet<String>> {
    bom["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .map(|dependency| {
            (
                dependency["ref"].as_str().expect("ref").to_string(),
                dependency["dependsOn"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            )
        })
        .collect()
}

fn sha256_of_file(path: &Path) -> String {
    pyferry_payload::seal::digest(&std::fs::read(path).expect("read"))
}

/// What uv resolves `requirements` to for the executable's target, offline from the wheel
/// cache: normalized name → version.
fn resolved_by_uv(scratch: &Scratch, requirements: &[&str]) -> BTreeMap<String, String> {
    let input = scratch.path("requirements.in");
    std::fs::write(&input, requirements.join("\n") + "\n").expect("write requirements.in");
    let uv = std::env::var("PYFERRY_UV").unwrap_or_else(|_| "uv".to_string());
    let compiled = run(Command::new(uv)
        .args(["pip", "compile", "--quiet", "--no-header", "--no-annotate"])
        .args(["--only-binary", ":all:", "--python-version", "3.11"])
        .args(["--python-platform", "x86_64-manylinux_2_28", "--no-index"])
        .arg("--find-links")
        .arg(wheel_cache())
        .arg(&input)
        .env("UV_NO_PROGRESS", "1"))
    .success();
    compiled
        .stdout
        .lines()
        .filter_map(|line| line.split_once("=="))
        .map(|(name, version)| (normalize(name.trim()), version.trim().to_string()))
        .collect()
}

/// The runtime's own description (`runtime.json` beside `pyferry-runtime`, or its
/// `.pyferry/runtime.json` entry), as the packer looks for it; `None` for a runtime built on
/// Debian's libpython, which has none.
fn runtime_description(runtime: &Path) -> Option<Value> {
    let beside = runtime.with_file_name("runtime.json");
    let inside = || {
        let file = std::fs::File::open(runtime).ok()?;
        let mut zip = zip::ZipArchive::new(file).ok()?;
        let mut entry = zip.by_name(".pyferry/runtime.json").ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).ok()?;
        Some(text)
    };
    let text = inside().or_else(|| std::fs::read_to_string(beside).ok())?;
    Some(serde_json::from_str(&text).expect("runtime.json is JSON"))
}

fn real_runtime() -> PathBuf {
    pyferry().with_file_name("pyferry-runtime")
}

/// Checks the components that describe an executable's runtime: pyferry's launcher (its
/// hash is the launcher's bytes in `exe`), CPython, and the C libraries `runtime.json` lists
/// when there is one.
#[track_caller]
fn assert_runtime_components(bom: &Value, exe: &Path, description: Option<&Value>) {
    let bytes = std::fs::read(exe).expect("read");
    let archive = pyferry_payload::Archive::parse(&bytes).expect("a pyferry file");
    let launcher_sha256 = pyferry_payload::seal::digest(&bytes[..archive.payload_start() as usize]);
    let named = |name: &str| {
        components(bom)
            .iter()
            .find(|component| component["name"] == name)
            .unwrap_or_else(|| panic!("no component `{name}`"))
    };
    assert_eq!(
        named("pyferry-launcher")["hashes"][0]["content"],
        launcher_sha256
    );
    let cpython = named("cpython");
    let version = cpython["version"].as_str().expect("CPython's version");
    assert!(version.starts_with("3.11."), "{version}");
    assert_eq!(cpython["purl"], format!("pkg:generic/cpython@{version}"));
    assert!(properties(cpython, "pyferry:sys.version")[0].starts_with(version));
    let application_needs = &graph(bom)["application"];
    assert!(application_needs.contains(&format!("pkg:generic/cpython@{version}")));
    match description {
        Some(description) => {
            assert_eq!(cpython["version"], description["cpython"]["version"]);
            assert_eq!(
                cpython["licenses"][0]["expression"],
                description["cpython"]["spdx"]
            );
            let needed = &graph(bom)[&format!("pkg:generic/cpython@{version}")];
            for library in description["libraries"].as_array().expect("libraries") {
                let name = library["name"].as_str().expect("name");
                let component = named(name);
                assert_eq!(component["version"], library["version"], "{name}");
                assert_eq!(
                    component["licenses"][0]["expression"], library["spdx"],
                    "{name}"
                );
                let purl = component["purl"].as_str().expect("a purl");
                assert!(purl.starts_with(&format!("pkg:generic/{name}@")), "{purl}");
                assert!(needed.contains(purl), "CPython does not depend on {name}");
            }
            let openssl = named("openssl");
            assert!(openssl["cpe"]
                .as_str()
                .is_some_and(|cpe| cpe.starts_with("cpe:2.3:a:openssl:openssl:")));
        }
        None => assert!(
            !components(bom)
                .iter()
                .any(|component| component["name"] == "openssl"),
            "no runtime.json, yet C libraries are listed"
        ),
    }
}

#[test]
fn an_executable_carries_an_sbom_that_the_reference_tools_accept() {
    cache_wheels(REQUIREMENTS);
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(
        &app,
        &[(
            "__main__.py",
            "import numpy, PIL, requests\nprint(numpy.__version__, PIL.__version__, requests.__version__)\n",
        )],
    );
    let exe = scratch.path("numpy-app");
    let written = scratch.path("numpy-app.cdx.json");
    let mut args = vec![app.to_str().unwrap()];
    args.extend(REQUIREMENTS);
    args.extend(["--sbom", written.to_str().unwrap()]);
    let packed = pack_offline(&args, &exe);
    assert_eq!(packed.code, Some(0), "{packed:#?}");
    assert_eq!(
        run(&mut Command::new(&exe)).success().stdout,
        "2.4.6 13.0.0 2.32.3\n"
    );

    // One document: the file `--sbom` wrote, what `inspect --sbom` prints.
    let printed = inspect_sbom(&exe, None);
    assert_eq!(
        printed,
        std::fs::read_to_string(&written).expect("--sbom wrote it")
    );
    assert_valid("cyclonedx", &written);
    let bom: Value = serde_json::from_str(&printed).expect("JSON");
    // The validator is strict: a field CycloneDX does not define is an error.
    let mut tampered = bom.clone();
    tampered["components"][0]["unexpected"] = Value::from(1);
    let tampered_path = scratch.path("tampered.cdx.json");
    std::fs::write(&tampered_path, tampered.to_string()).expect("write");
    assert_eq!(validate("cyclonedx", &tampered_path).code, Some(1));

    assert_eq!(bom["specVersion"], "1.6");
    assert!(bom["serialNumber"]
        .as_str()
        .is_some_and(|serial| serial.starts_with("urn:uuid:")));
    assert!(
        bom["metadata"].get("timestamp").is_none(),
        "no time without SOURCE_DATE_EPOCH"
    );
    let application = &bom["metadata"]["component"];
    // Named for what it runs, never for the output's name or the tree's directory.
    assert_eq!(application["name"], "application");
    assert_eq!(properties(application, "pyferry:entry-point"), ["__main__"]);
    assert_eq!(properties(application, "pyferry:format"), ["executable"]);
    assert!(
        !printed.contains(scratch.dir.path().to_str().unwrap()),
        "a path of the packing machine leaked into the SBOM"
    );

    // The distributions are those `inspect --json` reports, with the same vendored libraries.
    let report: Value = serde_json::from_str(
        &run(pyferry_command(["inspect", "--json"]).arg(&exe))
            .success()
            .stdout,
    )
    .expect("JSON");
    assert_eq!(report["sbom"], ".pyferry/sbom.cdx.json");
    let listed = distributions(&bom);
    let inspected: BTreeMap<String, &Value> = report["distributions"]
        .as_array()
        .expect("distributions")
        .iter()
        .map(|distribution| {
            (
                normalize(distribution["name"].as_str().unwrap()),
                distribution,
            )
        })
        .collect();
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        inspected.keys().collect::<Vec<_>>()
    );
    let zip_bytes = std::fs::read(&exe).expect("read");
    let archive = pyferry_payload::Archive::parse(&zip_bytes).expect("archive");
    for (name, component) in &listed {
        let from_inspect = inspected[name];
        assert_eq!(component["version"], from_inspect["version"], "{name}");
        let vendored: BTreeSet<&str> = component["components"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|nested| properties(nested, "pyferry:path"))
            .collect();
        let reported: BTreeSet<&str> = from_inspect["vendored_libraries"]
            .as_array()
            .expect("vendored_libraries")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(vendored, reported, "{name}");
        // Each vendored library's hash is that of its bytes in the executable.
        for nested in component["components"].as_array().into_iter().flatten() {
            let Some(path) = properties(nested, "pyferry:path").first().copied() else {
                continue;
            };
            let contents = archive.read(path).expect("read").expect("packed");
            assert_eq!(
                nested["hashes"][0]["content"],
                pyferry_payload::seal::digest(&contents),
                "{path}"
            );
        }
    }

    // ...and the wheels the resolver chose: the same names and versions as uv resolves on its
    // own, each with the SHA-256 of the wheel file it was installed from.
    let pins = resolved_by_uv(&scratch, REQUIREMENTS);
    let versions: BTreeMap<String, String> = listed
        .iter()
        .map(|(name, component)| {
            (
                name.clone(),
                component["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(versions, pins);
    for (name, component) in &listed {
        let wheel = properties(component, "pyferry:wheel")[0];
        let version = component["version"].as_str().unwrap();
        assert!(
            normalize(wheel).starts_with(&format!("{name}-{}", normalize(version))),
            "{wheel}"
        );
        assert_eq!(component["hashes"][0]["alg"], "SHA-256");
        assert_eq!(
            component["hashes"][0]["content"],
            sha256_of_file(&wheel_cache().join(wheel)),
            "{wheel}"
        );
        assert_eq!(
            component["purl"],
            format!(
                "pkg:pypi/{}@{version}",
                component["name"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .replace('_', "-")
            )
        );
    }

    // Licences from the metadata: numpy's License-Expression as it is.
    assert_eq!(
        listed["numpy"]["licenses"][0]["expression"],
        "BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0"
    );
    assert_eq!(listed["numpy"]["components"].as_array().unwrap().len(), 3);

    // Pillow's two PEP 770 documents are merged: the library auditwheel grafted, with its
    // RPM purl, and the libraries Pillow's own SBOM lists.
    let pillow = listed["pillow"];
    assert_eq!(
        properties(pillow, "pyferry:sbom-file"),
        [
            "pillow-13.0.0.dist-info/sboms/auditwheel.cdx.json",
            "pillow-13.0.0.dist-info/sboms/pillow-13.0.0.cdx.json"
        ]
    );
    let nested = pillow["components"].as_array().expect("nested");
    let libxau = nested
        .iter()
        .find(|component| component["purl"] == "pkg:rpm/almalinux/libXau@1.0.9-3.el8")
        .expect("auditwheel's libXau");
    assert!(nested
        .iter()
        .any(|component| component["name"] == "FreeType" && component["version"] == "2.14.3"));
    let dependencies = graph(&bom);
    assert!(dependencies["pkg:pypi/pillow@13.0.0"]
        .contains(libxau["bom-ref"].as_str().expect("a bom-ref")));

    // The dependency graph between distributions, from what was installed.
    assert_eq!(
        dependencies["pkg:pypi/requests@2.32.3"],
        ["certifi", "charset-normalizer", "idna", "urllib3"]
            .iter()
            .map(|name| format!("pkg:pypi/{name}@{}", pins[*name]))
            .collect::<BTreeSet<_>>()
    );
    assert!(dependencies["pkg:pypi/numpy@2.4.6"].is_empty());
    for needed in [
        "pkg:pypi/numpy@2.4.6",
        "pkg:pypi/pillow@13.0.0",
        "pkg:pypi/requests@2.32.3",
    ] {
        assert!(dependencies["application"].contains(needed), "{needed}");
    }
    assert!(!dependencies["application"].contains(&format!("pkg:pypi/idna@{}", pins["idna"])));

    assert_runtime_components(&bom, &exe, runtime_description(&real_runtime()).as_ref());

    // SPDX 2.3, converted from the same document, is valid too and names every purl.
    let spdx_path = scratch.path("numpy-app.spdx.json");
    std::fs::write(&spdx_path, inspect_sbom(&exe, Some("spdx"))).expect("write");
    assert_valid("spdx", &spdx_path);
    let spdx: Value = serde_json::from_str(&std::fs::read_to_string(&spdx_path).unwrap()).unwrap();
    let spdx_purls: BTreeSet<&str> = spdx["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .flat_map(|package| package["externalRefs"].as_array().into_iter().flatten())
        .filter(|reference| reference["referenceType"] == "purl")
        .filter_map(|reference| reference["referenceLocator"].as_str())
        .collect();
    for component in components(&bom) {
        if let Some(purl) = component["purl"].as_str() {
            assert!(spdx_purls.contains(purl), "{purl} not in the SPDX document");
        }
    }
    eprintln!(
        "the numpy app's SBOM: {} bytes CycloneDX, {} bytes SPDX",
        printed.len(),
        std::fs::metadata(&spdx_path).unwrap().len()
    );
}

#[test]
fn the_sbom_is_deterministic_and_verify_covers_it() {
    cache_wheels(&["requests==2.32.3"]);
    let files = [(
        "__main__.py",
        "import requests\nprint(requests.__version__)\n",
    )];
    for epoch in [None, Some("1700000000")] {
        let mut documents = Vec::new();
        let mut digests = Vec::new();
        let scratches = [Scratch::new(), Scratch::new()];
        // Elsewhere, and under another name: the same bytes.
        for (scratch, (dir, name)) in scratches
            .iter()
            .zip([("one", "requests-app"), ("elsewhere/two", "renamed")])
        {
            write_tree(&scratch.path(dir), &files);
            let exe = scratch.path(name);
            let mut command = pyferry_command(["pack"]);
            command
                .arg(scratch.path(dir))
                .args(["requests==2.32.3", "--no-index", "--find-links"])
                .arg(wheel_cache())
                .arg("-o")
                .arg(&exe)
                .current_dir(scratch.dir.path());
            match epoch {
                Some(epoch) => command.env("SOURCE_DATE_EPOCH", epoch),
                None => command.env_remove("SOURCE_DATE_EPOCH"),
            };
            run(&mut command).success();
            documents.push(inspect_sbom(&exe, None));
            digests.push(sha256_of_file(&exe));
        }
        assert_eq!(documents[0], documents[1], "SOURCE_DATE_EPOCH={epoch:?}");
        assert_eq!(digests[0], digests[1], "SOURCE_DATE_EPOCH={epoch:?}");
        let bom: Value = serde_json::from_str(&documents[0]).expect("JSON");
        let exe = scratches[0].path("requests-app");
        let spdx: Value = serde_json::from_str(&inspect_sbom(&exe, Some("spdx"))).expect("JSON");
        match epoch {
            Some(_) => {
                assert_eq!(bom["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
                assert_eq!(spdx["creationInfo"]["created"], "2023-11-14T22:13:20Z");
            }
            None => {
                assert!(bom["metadata"].get("timestamp").is_none());
                assert_eq!(spdx["creationInfo"]["created"], "1980-01-01T00:00:00Z");
            }
        }
    }

    // The SBOM is an entry like the others: `verify` checks it against RECORD.
    let scratch = Scratch::new();
    write_tree(&scratch.path("app"), &files);
    let exe = scratch.path("requests-app");
    let packed = pack_offline(
        &[scratch.path("app").to_str().unwrap(), "requests==2.32.3"],
        &exe,
    );
    assert_eq!(packed.code, Some(0), "{packed:#?}");
    let verified = run(pyferry_command(["verify"]).arg(&exe)).success();
    assert!(verified.stdout.contains(": ok, "), "{}", verified.stdout);
    let mut bytes = std::fs::read(&exe).expect("read");
    let (start, size) = {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).expect("a zip");
        let entry = zip
            .by_name(".pyferry/sbom.cdx.json")
            .expect("the SBOM entry");
        (
            entry.data_start().expect("data offset"),
            entry.compressed_size(),
        )
    };
    bytes[(start + size / 2) as usize] ^= 0x01;
    let damaged = scratch.path("damaged");
    std::fs::write(&damaged, &bytes).expect("write");
    let finished = run(pyferry_command(["verify"]).arg(&damaged));
    assert_eq!(finished.code, Some(1), "{finished:#?}");
    assert!(
        finished.stderr.starts_with("pyferry: error: ")
            && finished.stderr.lines().count() == 1
            && finished.stderr.contains("`.pyferry/sbom.cdx.json`"),
        "{}",
        finished.stderr
    );
}

#[test]
fn a_pyz_carries_an_sbom_of_the_application_and_its_distributions() {
    cache_wheels(&["requests==2.32.3"]);
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(
        &app,
        &[(
            "__main__.py",
            "import requests\nprint(requests.__version__)\n",
        )],
    );
    let pyz = scratch.path("app.pyz");
    let written = scratch.path("app.spdx.json");
    let mut command = pyferry_command(["pack", "--format", "pyz"]);
    command
        .arg(&app)
        .args(["requests==2.32.3", "--no-index", "--find-links"])
        .arg(wheel_cache())
        .arg("-o")
        .arg(&pyz)
        .arg("--sbom")
        .arg(&written);
    run(&mut command).success();
    assert_eq!(
        run(Command::new("/usr/bin/python3.11").arg(&pyz))
            .success()
            .stdout,
        "2.32.3\n"
    );

    let cyclonedx = scratch.path("app.cdx.json");
    std::fs::write(&cyclonedx, inspect_sbom(&pyz, Some("cyclonedx"))).expect("write");
    assert_valid("cyclonedx", &cyclonedx);
    let bom: Value = serde_json::from_str(&std::fs::read_to_string(&cyclonedx).unwrap()).unwrap();
    let application = &bom["metadata"]["component"];
    assert_eq!(application["name"], "application");
    assert_eq!(properties(application, "pyferry:format"), ["pyz"]);
    assert_eq!(
        properties(application, "pyferry:interpreter-tag"),
        ["cp311"]
    );
    // charset-normalizer's compiled wheel makes it a manylinux pyz: the manifest's tags.
    let report: Value = serde_json::from_str(
        &run(pyferry_command(["inspect", "--json"]).arg(&pyz))
            .success()
            .stdout,
    )
    .expect("JSON");
    assert_eq!(
        properties(application, "pyferry:platform-tag"),
        [report["tags"]["platform"].as_str().expect("a platform tag")]
    );
    // No runtime inside: the application and its distributions only.
    let names: BTreeSet<&str> = components(&bom)
        .iter()
        .filter_map(|component| component["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "certifi",
            "charset-normalizer",
            "idna",
            "requests",
            "urllib3"
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(graph(&bom)["pkg:pypi/requests@2.32.3"].len(), 4);

    // `--sbom FILE.spdx.json` wrote SPDX: the conversion `inspect` prints.
    assert_eq!(
        std::fs::read_to_string(&written).expect("--sbom wrote it"),
        inspect_sbom(&pyz, Some("spdx"))
    );
    assert_valid("spdx", &written);
}

#[test]
fn the_sbom_takes_the_runtime_description_beside_the_runtime() {
    if runtime_description(&real_runtime()).is_some_and(|_| {
        std::fs::File::open(real_runtime())
            .ok()
            .and_then(|file| zip::ZipArchive::new(file).ok())
            .is_some_and(|mut zip| zip.by_name(".pyferry/runtime.json").is_ok())
    }) {
        eprintln!(
            "skipped: the runtime carries its own description, which wins over a file beside it"
        );
        return;
    }
    let scratch = Scratch::new();
    let runtime = scratch.path("runtime/pyferry-runtime");
    std::fs::create_dir_all(runtime.parent().unwrap()).expect("mkdir");
    std::fs::copy(real_runtime(), &runtime).expect("copy the runtime");
    write_tree(&scratch.path("app"), &[("__main__.py", "print('hello')\n")]);
    let pack = |name: &str| {
        let exe = scratch.path(name);
        let finished = run(pyferry_command(["pack"])
            .arg(scratch.path("app"))
            .arg("-o")
            .arg(&exe)
            .env("PYFERRY_RUNTIME", &runtime));
        (finished, exe)
    };
    let (first, exe) = pack("hello");
    assert_eq!(first.code, Some(0), "{first:#?}");
    let bom: Value = serde_json::from_str(&inspect_sbom(&exe, None)).expect("JSON");
    assert_runtime_components(&bom, &exe, None);
    let version = components(&bom)
        .iter()
        .find(|component| component["name"] == "cpython")
        .and_then(|component| component["version"].as_str())
        .expect("CPython's version")
        .to_string();

    // A real runtime.json (tests/fixtures), saying the version this runtime runs.
    let fixture =
        std::fs::read_to_string(workspace_root().join("packer/tests/fixtures/runtime.json"))
            .expect("read the fixture");
    let mut description: Value = serde_json::from_str(&fixture).expect("JSON");
    description["cpython"]["version"] = Value::from(version.clone());
    let beside = runtime.with_file_name("runtime.json");
    std::fs::write(&beside, description.to_string()).expect("write");
    let (second, exe) = pack("hello-described");
    assert_eq!(second.code, Some(0), "{second:#?}");
    assert_eq!(run(&mut Command::new(&exe)).success().stdout, "hello\n");
    let document = scratch.path("described.cdx.json");
    std::fs::write(&document, inspect_sbom(&exe, None)).expect("write");
    assert_valid("cyclonedx", &document);
    let bom: Value = serde_json::from_str(&std::fs::read_to_string(&document).unwrap()).unwrap();
    assert_runtime_components(&bom, &exe, Some(&description));
    let openssl = components(&bom)
        .iter()
        .find(|component| component["name"] == "openssl")
        .expect("openssl");
    assert_eq!(openssl["purl"], "pkg:generic/openssl@3.6.3");
    assert_eq!(
        openssl["pedigree"]["ancestors"][0]["purl"],
        "pkg:cargo/openssl-src@300.6.1%2B3.6.3"
    );
    let spdx = scratch.path("described.spdx.json");
    std::fs::write(&spdx, inspect_sbom(&exe, Some("spdx"))).expect("write");
    assert_valid("spdx", &spdx);

    // A description of another CPython is stale: refused, naming the file.
    description["cpython"]["version"] = Value::from("3.11.99");
    std::fs::write(&beside, description.to_string()).expect("write");
    let (stale, _) = pack("stale");
    assert_error_line(
        &stale,
        "runtime.json` describes CPython 3.11.99, but the runtime",
    );
    std::fs::write(&beside, "{\"cpython\": ").expect("write");
    let (damaged, _) = pack("damaged");
    assert_error_line(&damaged, "runtime.json` is not a runtime description");
}

#[test]
fn sbom_errors_are_one_line() {
    let inspected = run(pyferry_command(["inspect", "--sbom"]).arg(real_runtime()));
    assert_error_line(&inspected, "is the pyferry runtime, which carries no SBOM");
    let scratch = Scratch::new();
    write_tree(&scratch.path("app"), &[("__main__.py", "print(1)\n")]);
    let exe = scratch.path("app.bin");
    let packed = pack_offline(
        &[
            scratch.path("app").to_str().unwrap(),
            "--sbom",
            scratch.path("missing/app.cdx.json").to_str().unwrap(),
        ],
        &exe,
    );
    assert_error_line(&packed, "cannot write the SBOM");
    assert!(
        !exe.exists(),
        "nothing is packed when the SBOM cannot be written"
    );
    let itself = pack_offline(
        &[
            scratch.path("app").to_str().unwrap(),
            "--sbom",
            exe.to_str().unwrap(),
        ],
        &exe,
    );
    assert_error_line(&itself, "names the output itself");
    assert!(!exe.exists());
    let without = run(pyferry_command(["inspect", "--format", "spdx"]).arg(&exe));
    assert_eq!(without.code, Some(2), "{without:#?}");
    assert!(without.stderr.contains("--sbom"), "{}", without.stderr);
}
