# frozen_string_literal: true

require "spec_helper"
require "tasker_events/cli"

RSpec.describe TaskerEvents::CLI::Demo, :integration do
  it "runs the payments scenario on a database without PGMQ, through to its summary" do
    with_fresh_database do |url|
      result = run_cli("demo", "--database-url", url)

      expect(result.exitstatus).to eq(0), result.to_s
      expect(result.stdout).to include(
        "== publishing", "[subscriber] payment.authorized", "[subscriber] payment.refunded",
        "== payments_domain_events, read without consuming", "== summary",
        "published        durable=1 fast=1 broadcast=2",
        "durable          accepted=3 delivered=3 dropped=0",
        "ruby_subscribers accepted=3 delivered=3 dropped=0",
        "in-process events counted by EventCounter: 3"
      )
      expect(result.stdout.scan(/\[pgmq msg \d+ *\] \S+ +\S+ +read_ct=0 /).size).to eq(3)
      expect(result.stderr).to include("installing PGMQ if it is missing")
    end
  end
end
