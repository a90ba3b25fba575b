# frozen_string_literal: true

# Writes a Makefile that builds the extension with cargo (the rb_sys gem is not needed).
# RubyGems runs `make` and `make install` here, installing into the gem's extension directory;
# `rake compile` runs the same with `sitearchdir=lib`. Either way the library lands at
# tasker_events/tasker_events.<dlext> on the load path.

require "rbconfig"

root = File.expand_path("../..", __dir__)
dlext = RbConfig::CONFIG["DLEXT"]
profile = ENV.fetch("TASKER_EVENTS_CARGO_PROFILE", "release")
target_dir = ENV.fetch("CARGO_TARGET_DIR", File.join(root, "target"))
profile_dir = profile == "dev" ? "debug" : profile
cargo_lib = "libtasker_events.#{RbConfig::CONFIG["host_os"].match?(/darwin/) ? "dylib" : "so"}"
built = File.join(target_dir, profile_dir, cargo_lib)
cargo = ENV.fetch("CARGO", "cargo")
locked = File.exist?(File.join(root, "Cargo.lock")) ? "--locked" : ""
sitearchdir = RbConfig::CONFIG["sitearchdir"]

File.write("Makefile", <<~MAKE)
  CARGO = #{cargo}
  TARGET = tasker_events.#{dlext}
  sitearchdir = #{sitearchdir}

  all: $(TARGET)

  $(TARGET): FORCE
  \t$(CARGO) build #{locked} --manifest-path "#{root}/Cargo.toml" --target-dir "#{target_dir}" \\
  \t\t--profile #{profile} --package tasker_events
  \tcp "#{built}" $(TARGET).new && mv -f $(TARGET).new $(TARGET)

  # Copied beside the old library, then renamed over it: a process that has the old one
  # loaded keeps its file, where copying over it in place would crash that process.
  install: $(TARGET)
  \tmkdir -p "$(DESTDIR)$(sitearchdir)/tasker_events"
  \tcp $(TARGET) "$(DESTDIR)$(sitearchdir)/tasker_events/$(TARGET).new"
  \tmv -f "$(DESTDIR)$(sitearchdir)/tasker_events/$(TARGET).new" \\
  \t\t"$(DESTDIR)$(sitearchdir)/tasker_events/$(TARGET)"

  clean:
  \trm -f $(TARGET)

  FORCE:

  .PHONY: all install clean FORCE
MAKE
