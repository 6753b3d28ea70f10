//! The release tarballs `make dist` writes to dist/. These tests are `#[ignore]`d in a plain
//! `cargo test` (they need the ~6 minute musl build); `make dist-check` (CI) runs them with
//! `--include-ignored`, CNI_DIST_VERSION set and nothing skipped. Only the ELF reader's own test
//! runs everywhere, against the glibc debug build, so it is known to see dynamic linking.

use cni_suite_tests::sandbox::{in_sandbox, privileged, Netns};
use cni_suite_tests::{lease_names, our_plugin, release_of, Call};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGINS: [&str; 4] = ["bridge", "host-local", "loopback", "portmap"];
/// ELF e_machine of each tarball's architecture.
const ARCHES: [(&str, u16); 2] = [("amd64", 62), ("arm64", 183)];
const QEMU: &str = "/usr/bin/qemu-aarch64-static";

/// What decides whether an ELF file runs without a dynamic loader.
#[derive(Debug, PartialEq)]
struct Linking {
    machine: u16,
    /// A PT_INTERP program header: the kernel would start a dynamic loader.
    interp: bool,
    /// DT_NEEDED entries of the dynamic section: shared libraries it asks for.
    needed: usize,
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the program headers and dynamic section of a little-endian ELF64 file.
fn linking(path: &Path) -> Linking {
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NEEDED: u64 = 1;
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        b.len() > 64 && b[..4] == *b"\x7fELF" && b[4] == 2 && b[5] == 1,
        "{} is not a little-endian ELF64 file",
        path.display()
    );
    let (phoff, phentsize, phnum) = (le_u64(&b, 0x20) as usize, 0x38, le_u16(&b, 0x38));
    let mut out = Linking {
        machine: le_u16(&b, 0x12),
        interp: false,
        needed: 0,
    };
    for i in 0..phnum as usize {
        let ph = phoff + i * phentsize;
        match le_u32(&b, ph) {
            PT_INTERP => out.interp = true,
            PT_DYNAMIC => {
                let (off, size) = (le_u64(&b, ph + 8) as usize, le_u64(&b, ph + 32) as usize);
                for entry in b[off..off + size].chunks_exact(16) {
                    match le_u64(entry, 0) {
                        0 => break,
                        DT_NEEDED => out.needed += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_elf_reader_sees_the_glibc_builds_loader_and_libraries() {
    let l = linking(&our_plugin("host-local"));
    assert!(l.interp && l.needed >= 1, "{l:?}");
}

/// dist/ (or CNI_DIST_DIR) and the version `make dist-check` says it built.
fn dist() -> (PathBuf, String) {
    let dir = std::env::var_os("CNI_DIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("dist"));
    let version = std::env::var("CNI_DIST_VERSION")
        .expect("CNI_DIST_VERSION is unset: run these through `make dist-check`");
    (dir, version)
}

fn tarball(arch: &str) -> (PathBuf, String) {
    let (dir, version) = dist();
    let name = format!("cni-plugins-rs-linux-{arch}-v{version}.tgz");
    (dir.join(&name), name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tarball of `arch` unpacked in a temp dir.
fn unpacked(arch: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    run(Command::new("tar")
        .arg("-xzf")
        .arg(tarball(arch).0)
        .arg("-C")
        .arg(dir.path()));
    dir
}

#[test]
#[ignore = "needs `make dist`; run by `make dist-check`"]
fn tarballs_hold_the_plugins_license_and_readme_with_checksum_files() {
    for (arch, _) in ARCHES {
        let (path, name) = tarball(arch);
        // `tar -tv --numeric-owner`: "-rwxr-xr-x 0/0 1950528 2026-12-04 20:02 ./bridge".
        let listing = run(Command::new("tar")
            .args(["-tvz", "--numeric-owner", "-f"])
            .arg(&path));
        let mut entries: Vec<(String, String, String)> = listing
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[5].to_string(), f[0].to_string(), f[1].to_string())
            })
            .collect();
        entries.sort();
        let mut want = vec![
            ("./".to_string(), "drwxr-xr-x".to_string()),
            ("./LICENSE".to_string(), "-rw-r--r--".to_string()),
            ("./README.md".to_string(), "-rw-r--r--".to_string()),
        ];
        want.extend(PLUGINS.map(|p| (format!("./{p}"), "-rwxr-xr-x".to_string())));
        want.sort();
        let got: Vec<(String, String)> = entries
            .iter()
            .map(|(n, m, _)| (n.clone(), m.clone()))
            .collect();
        assert_eq!(got, want, "{listing}");
        assert!(entries.iter().all(|(_, _, o)| o == "0/0"), "{listing}");

        let dir = path.parent().expect("dist dir");
        for (sum, hex) in [("sha256", 64), ("sha512", 128)] {
            let file = std::fs::read_to_string(dir.join(format!("{name}.{sum}")))
                .unwrap_or_else(|e| panic!("{name}.{sum}: {e}"));
            let (hash, rest) = file.split_at(hex);
            assert!(hash.bytes().all(|c| c.is_ascii_hexdigit()), "{file}");
            assert_eq!(rest, format!("  {name}\n"), "{sum}sum format");
            run(Command::new(format!("{sum}sum"))
                .args(["--check", "--quiet"])
                .arg(format!("{name}.{sum}"))
                .current_dir(dir));
        }
    }
}

#[test]
#[ignore = "needs `make dist`; run by `make dist-check`"]
fn binaries_are_static_for_their_arch_and_hold_no_build_paths() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let home_cargo = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    for (arch, machine) in ARCHES {
        let dir = unpacked(arch);
        for p in PLUGINS {
            let path = dir.path().join(p);
            let want = Linking {
                machine,
                interp: false,
                needed: 0,
            };
            assert_eq!(linking(&path), want, "{arch} {p}");
            let bytes = std::fs::read(&path).expect("read");
            for leak in [repo, home_cargo.as_str()] {
                assert!(
                    !bytes.windows(leak.len()).any(|w| w == leak.as_bytes()),
                    "{arch} {p} contains the build path {leak}"
                );
            }
        }
    }
}

#[test]
#[ignore = "needs `make dist`; run by `make dist-check`"]
fn every_plugin_says_the_release_version() {
    let (_, version) = dist();
    let dir = unpacked("amd64");
    for p in PLUGINS {
        assert_eq!(
            release_of(&dir.path().join(p)),
            format!("v{version}"),
            "{p}"
        );
    }
    let arm = unpacked("arm64");
    for p in PLUGINS {
        let reply = Call::new("", "", "")
            .unset("CNI_COMMAND")
            .under(Path::new(QEMU))
            .run(&arm.path().join(p));
        assert!(
            reply
                .stderr
                .starts_with(&format!("CNI {p} plugin v{version}\n")),
            "{reply:?}"
        );
    }
}

#[test]
#[ignore = "needs `make dist`; run by `make dist-check`"]
fn arm64_host_local_adds_checks_deletes_and_collects_under_qemu() {
    let arm = unpacked("arm64");
    let hl = arm.path().join("host-local");
    let qemu = Path::new(QEMU);
    let version = Call::new("VERSION", "", "").under(qemu).run(&hl).ok();
    assert_eq!(
        version["supportedVersions"].as_array().map(Vec::len),
        Some(7)
    );

    let data = tempfile::tempdir().expect("tempdir");
    let conf = json!({
        "cniVersion": "1.1.0", "name": "armnet", "type": "bridge",
        "ipam": { "type": "host-local", "subnet": "10.77.0.0/24", "dataDir": data.path() },
    });
    let call = |verb: &str, id: &str, conf: &Value| {
        Call::new(verb, id, conf.to_string())
            .cni_path(&arm.path().display().to_string())
            .under(qemu)
            .run(&hl)
    };
    let added = call("ADD", "c1", &conf).ok();
    assert_eq!(added["ips"][0]["address"], "10.77.0.2/24", "{added}");
    call("ADD", "c2", &conf).ok();
    let net = data.path().join("armnet");
    assert_eq!(lease_names(&net), ["10.77.0.2", "10.77.0.3"]);

    let mut check = conf.clone();
    check["prevResult"] = added.clone();
    call("CHECK", "c1", &check).ok();
    // CHECK of an attachment that holds no lease fails.
    call("CHECK", "c9", &check).err(999);

    call("DEL", "c1", &conf).ok();
    assert_eq!(lease_names(&net), ["10.77.0.3"]);
    call("ADD", "c3", &conf).ok();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{ "containerID": "c3", "ifname": "eth0" }]);
    call("GC", "", &gc).ok();
    assert_eq!(lease_names(&net), ["10.77.0.4"]);
}

/// What qemu-user (7.2) lets the arm64 network plugins do: it translates NETLINK_ROUTE, so
/// loopback and bridge without masquerade work end to end; it has no NETLINK_NETFILTER, so
/// nftables masquerade, portmap, and with `ipMasq` bridge's DEL (which cleans both masquerade
/// backends) fail with EPROTONOSUPPORT and stay untested on arm64.
#[test]
#[ignore = "needs `make dist`; run by `make dist-check`"]
fn arm64_loopback_and_bridge_work_under_qemu_as_far_as_qemu_user_allows() {
    if !privileged() {
        return;
    }
    let arm = unpacked("arm64");
    // qemu-user runs an exec'ed arm64 binary only with binfmt_misc set up; CI machines need not
    // have it, so bridge finds host-local as a script that starts it under qemu.
    let cni_path = tempfile::tempdir().expect("tempdir");
    let wrapper = cni_path.path().join("host-local");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {QEMU} {} \"$@\"\n",
            arm.path().join("host-local").display()
        ),
    )
    .expect("write wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = tempfile::tempdir().expect("tempdir");
    in_sandbox(|| {
        let ns = Netns::new();
        let call = |plugin: &str, verb: &str, ifname: &str, conf: &Value| {
            Call::new(verb, "c1", conf.to_string())
                .netns(&ns.path_str())
                .ifname(ifname)
                .cni_path(&cni_path.path().display().to_string())
                .under(Path::new(QEMU))
                .run(&arm.path().join(plugin))
        };
        ns.sh("ip link set lo down");
        let lo = json!({"cniVersion": "1.0.0", "name": "lo", "type": "loopback"});
        call("loopback", "ADD", "lo", &lo).ok();
        assert!(ns.sh("ip -br link show lo").contains("UP"));

        let conf = json!({
            "cniVersion": "1.0.0", "name": "armnet", "type": "bridge", "bridge": "armbr0",
            "isGateway": true,
            "ipam": { "type": "host-local", "subnet": "10.78.0.0/24", "dataDir": data.path() },
        });
        let added = call("bridge", "ADD", "eth0", &conf).ok();
        assert_eq!(added["ips"][0]["address"], "10.78.0.2/24", "{added}");
        assert!(ns.sh("ip -br addr show eth0").contains("10.78.0.2/24"));
        assert!(ns.sh_ok("ping -c1 -W2 10.78.0.1"));
        let mut check = conf.clone();
        check["prevResult"] = added;
        call("bridge", "CHECK", "eth0", &check).ok();
        call("bridge", "DEL", "eth0", &conf).ok();
        assert!(!ns.sh_ok("ip link show eth0"));
        assert!(lease_names(&data.path().join("armnet")).is_empty());
    });
}
