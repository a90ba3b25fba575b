# frozen_string_literal: true

require "rspec/core/sandbox"

# Runs an example group in a sandboxed RSpec world, so that a spec can prove what the shared
# examples report for a broken class without the outer suite counting those failures.
module SandboxHelpers
  # @return [Hash{String => String, nil}] each example's description and its failure message,
  #   nil for an example that passed
  def run_sandboxed(&)
    RSpec::Core::Sandbox.sandboxed do |config|
      config.expect_with(:rspec) { |c| c.syntax = :expect }
      TaskerEvents::RSpec.define_shared_examples
      group = RSpec.describe("sandboxed", &)
      group.run(RSpec::Core::NullReporter)
      group.descendants.flat_map(&:examples).to_h do |example|
        [example.description, example.execution_result.exception&.message]
      end
    end
  end

  # Runs one of the gem's shared examples against `subject` in a sandbox; the block, if any,
  # customizes them (with `let`), as it would after `it_behaves_like`.
  # @return [Hash{String => String, nil}] see {#run_sandboxed}
  def run_shared_examples(name, subject, &customize)
    customize ||= proc {}
    run_sandboxed { it_behaves_like(name, subject, &customize) }
  end
end

RSpec.configure { |config| config.include SandboxHelpers }
