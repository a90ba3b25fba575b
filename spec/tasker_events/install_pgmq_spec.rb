# frozen_string_literal: true

require "spec_helper"
require "pg"

RSpec.describe "TaskerEvents.install_pgmq", :integration do
  it "installs PGMQ as plain SQL and can run again" do
    url = PrivatePostgres.url
    expect(TaskerEvents.install_pgmq(url)).to be(true)
    expect(TaskerEvents.install_pgmq(url)).to be(true)
    connection = PG.connect(url)
    schema = connection.exec("SELECT 1 FROM pg_namespace WHERE nspname = 'pgmq'")
    extension = connection.exec("SELECT 1 FROM pg_extension WHERE extname = 'pgmq'")
    expect([schema.ntuples, extension.ntuples]).to eq([1, 0])
  ensure
    connection&.close
  end

  it "raises DatabaseError without the password when PostgreSQL is unreachable" do
    expect do
      TaskerEvents.install_pgmq("postgres://u:hunter2@127.0.0.1:1/x", connect_timeout_ms: 300)
    end
      .to raise_error(TaskerEvents::DatabaseError) { |e|
            expect(e.message).not_to include("hunter2")
          }
  end
end
