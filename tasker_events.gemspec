# frozen_string_literal: true

require_relative "lib/tasker_events/version"

Gem::Specification.new do |spec|
  spec.name = "tasker_events"
  spec.version = TaskerEvents::VERSION
  spec.summary = "Domain events for workflow workers: PGMQ, in-process subscribers, or both"
  spec.description = <<~TEXT
    Step handlers publish business events; a Rust core routes each by delivery mode to a PGMQ
    queue on PostgreSQL (durable), to in-process Ruby and Rust subscribers (fast), or to both
    (broadcast). Publishing never blocks the step and never raises for delivery problems.
  TEXT
  spec.authors = ["tasker_events contributors"]
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.1"
  spec.metadata["rubygems_mfa_required"] = "true"

  spec.files = Dir[
    "lib/**/*.rb", "ext/**/*.{rb,rs,toml}", "config/**/*.toml", "exe/*", "Cargo.toml",
    "Cargo.lock", "README.md", "CHANGELOG.md", "LICENSE"
  ].reject { |path| path.include?("/tests/") }
  spec.bindir = "exe"
  spec.executables = ["tasker-events"]
  spec.require_paths = ["lib"]
  spec.extensions = ["ext/tasker_events/extconf.rb"]
end
