use std::os::unix::fs::MetadataExt;

use netops::{run_in_netns, Error, Netns, RouteSocket};

use crate::sandbox::{ip_json, run};

fn thread_netns_inode() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
}

#[test]
fn open_refuses_paths_that_are_not_network_namespaces() {
    // Read-only checks; no namespace is entered.
    for path in ["/proc/self/ns/mnt", "/proc/self/status", "/etc/hostname"] {
        match Netns::open(path) {
            Err(e @ Error::NotANetns { .. }) => {
                assert_eq!(e.to_string(), format!("{path} is not a network namespace"));
            }
            other => panic!("{path}: expected NotANetns, got {other:?}"),
        }
    }
    let e = Netns::open("/nonexistent/netns").unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(
        e.to_string(),
        "opening network namespace /nonexistent/netns: No such file or directory (os error 2)"
    );
}

#[test]
fn open_accepts_proc_pid_and_thread_paths() {
    let own = Netns::open(format!("/proc/{}/ns/net", std::process::id())).unwrap();
    let cur = Netns::current().unwrap();
    assert!(own.same_as(&cur).unwrap());
    assert_eq!(own.inode().unwrap(), thread_netns_inode());
}

#[test]
fn run_in_netns_runs_there_and_leaves_the_caller_in_place() {
    run("run_in_netns", |sb| {
        let before = thread_netns_inode();
        let inside = run_in_netns(&sb.container_ns, thread_netns_inode).unwrap();
        assert_eq!(inside, sb.container_ns.inode().unwrap());
        assert_ne!(inside, before);
        assert_eq!(thread_netns_inode(), before, "caller thread moved");
        assert_eq!(before, sb.host_ns.inode().unwrap());
    });
}

#[test]
fn open_in_binds_the_socket_to_the_target_netns() {
    run("open_in", |sb| {
        // A socket opened in the container netns keeps acting there, from this thread.
        let mut c = RouteSocket::open_in(&sb.container_ns).unwrap();
        c.create_bridge(&netops::BridgeSpec::new("ctrbr0")).unwrap();
        assert!(sb.container.link_by_name("ctrbr0").unwrap().is_some());
        assert!(sb.host.link_by_name("ctrbr0").unwrap().is_none());
        let names: Vec<String> = ip_json(&sb.container_ns, &["link", "show"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["lo", "ctrbr0"]);
        assert_eq!(
            ip_json(&sb.host_ns, &["link", "show"])
                .as_array()
                .unwrap()
                .len(),
            1
        );
    });
}
