# frozen_string_literal: true

require "spec_helper"
require "tasker_events/cli"
require "pg"

RSpec.describe TaskerEvents::CLI::Install, :integration do
  def pgmq_state(url)
    connection = PG.connect(url)
    schema = connection.exec("SELECT 1 FROM pg_namespace WHERE nspname = 'pgmq'").ntuples
    extension = connection.exec("SELECT 1 FROM pg_extension WHERE extname = 'pgmq'").ntuples
    { schema:, extension: }
  ensure
    connection&.close
  end

  it "installs PGMQ as plain SQL into a database without it, saying what it does" do
    with_fresh_database do |url|
      expect(pgmq_state(url)[:schema]).to eq(0)

      result = run_cli("install", "--database-url", url)

      expect(result.exitstatus).to eq(0), result.to_s
      expect(pgmq_state(url)).to eq(schema: 1, extension: 0)
      expect(result.stderr).to include("connecting to #{url}", "PGMQ is missing; installing it")
      expect(result.stdout).to eq("PGMQ is installed in #{url}\n")
    end
  end

  it "can run again, and says that PGMQ was already there" do
    with_fresh_database do |url|
      expect(run_cli("install", env: { "DATABASE_URL" => url }).exitstatus).to eq(0)

      again = run_cli("install", env: { "DATABASE_URL" => url })

      expect(again.exitstatus).to eq(0), again.to_s
      expect(again.stderr).to include("PGMQ is installed; updating it if it is older")
      expect(pgmq_state(url)).to eq(schema: 1, extension: 0)
    end
  end
end
