fn main() {
    cni_protocol::skel::main(&host_local::plugin::HostLocal, "host-local")
}
