fn main() {
    cni_protocol::skel::main(&host_local::plugin::HostLocal, host_local::plugin::ABOUT)
}
