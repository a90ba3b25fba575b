# frozen_string_literal: true

require "spec_helper"
require "tasker_events/cli"
require "tmpdir"

RSpec.describe TaskerEvents::CLI::Validate do
  good = File.expand_path("../../../examples/templates/payments/credit_card_payment/1.0.0.yaml",
                          __dir__)

  around do |example|
    Dir.mktmpdir("tasker-events-validate") do |dir|
      @dir = dir
      example.run
    end
  end

  def write(name, yaml)
    File.join(@dir, name).tap { |path| File.write(path, yaml) }
  end

  def load_error(path)
    TaskerEvents::TaskTemplate.load(path)
    raise "#{path} loaded, but the spec expects it to be malformed"
  rescue TaskerEvents::TemplateError => e
    e.message
  end

  let(:bad_name) do
    write("bad_name.yaml", <<~YAML)
      name: refund
      namespace_name: payments
      version: 1.0.0
      steps:
        - name: refund_payment
          publishes_events:
            - name: Refund.Issued
    YAML
  end

  let(:bad_yaml) { write("bad_yaml.yml", "name: [refund\nversion: 1\n") }

  it "prints an ok line for a good template and exits 0" do
    result = run_cli("validate", good)

    expect(result.exitstatus).to eq(0), result.to_s
    expect(result.stdout).to eq("ok #{good}: credit_card_payment 1.0.0 (namespace payments, " \
                                "2 steps, 3 declared events)\n")
    expect(result.stderr).to be_empty
  end

  it "prints load's message for each bad template and exits 1" do
    result = run_cli("validate", good, bad_name, bad_yaml)

    expect(result.exitstatus).to eq(1), result.to_s
    expect(result.stdout.lines.size).to eq(1)
    expect(result.stderr.lines.map(&:chomp))
      .to eq([load_error(bad_name), load_error(bad_yaml), "tasker-events: 2 of 3 templates " \
                                                          "are invalid"])
    expect(load_error(bad_name)).to include(bad_name, "Refund.Issued")
  end

  it "checks every *.yaml and *.yml file under a directory" do
    bad_name
    bad_yaml
    write("notes.txt", "not a template")

    result = run_cli("validate", @dir)

    expect(result.exitstatus).to eq(1)
    expect(result.stderr).to include(load_error(bad_name), load_error(bad_yaml))
    expect(result.stderr).not_to include("notes.txt")
  end

  it "reports a file that does not exist as a failure" do
    missing = File.join(@dir, "missing.yaml")
    result = run_cli("validate", missing)

    expect(result.exitstatus).to eq(1)
    expect(result.stderr).to include(load_error(missing))
  end

  it "needs at least one path" do
    result = run_cli("validate")

    expect(result.exitstatus).to eq(2)
    expect(result.stderr).to include("validate needs at least one PATH")
  end
end
