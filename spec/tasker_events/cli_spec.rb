# frozen_string_literal: true

require "spec_helper"
require "tasker_events/cli"

# The parts of `tasker-events` every command shares: help, version, usage errors, and the exit
# statuses for a database that cannot be used. Each command has a spec of its own under
# spec/tasker_events/cli/.
RSpec.describe TaskerEvents::CLI do
  commands = %w[install queues tail validate demo]

  describe "--help" do
    it "lists every command and documents the exit statuses" do
      result = run_cli("--help")
      expect(result.exitstatus).to eq(0), result.to_s
      commands.each { |command| expect(result.stdout).to match(/^  #{command}\s+\S/) }
      [0, 1, 2, 3, 4, 130].each { |status| expect(result.stdout).to match(/^ +#{status}  \S/) }
      expect(result.stdout).to include("DATABASE_URL")
      expect(run_cli("-h").stdout).to eq(result.stdout)
    end

    commands.each do |command|
      it "is there for #{command}, with its usage line and the exit statuses" do
        result = run_cli(command, "--help")
        expect(result.exitstatus).to eq(0), result.to_s
        expect(result.stdout).to start_with("Usage: tasker-events #{command} ")
        expect(result.stdout).to include("Exit status:", "-h, --help")
        expect(run_cli("help", command).stdout).to eq(result.stdout)
        expect(run_cli(command, "-h").stdout).to eq(result.stdout)
      end
    end
  end

  it "prints its version" do
    result = run_cli("--version")
    expect(result.exitstatus).to eq(0)
    expect(result.stdout).to eq("tasker-events #{TaskerEvents::VERSION}\n")
  end

  describe "usage errors (exit status 2)" do
    it "refuses to run without a command" do
      result = run_cli
      expect(result.exitstatus).to eq(2)
      expect(result.stderr).to include("no command given", "tasker-events --help")
    end

    it "names an unknown command and the known ones" do
      result = run_cli("purge")
      expect(result.exitstatus).to eq(2)
      expect(result.stderr).to include('unknown command "purge"', commands.join(", "))
    end

    it "names an unknown option and points at the command's help" do
      result = run_cli("queues", "--colour")
      expect(result.exitstatus).to eq(2)
      expect(result.stderr).to include("invalid option: --colour",
                                       "Run 'tasker-events queues --help'")
      expect(result.stdout).to be_empty
    end

    it "says how to give a database URL when there is none" do
      result = run_cli("queues")
      expect(result.exitstatus).to eq(2)
      expect(result.stderr).to include("--database-url URL or set DATABASE_URL")
    end

    it "refuses an unexpected argument" do
      result = run_cli("queues", "extra", env: { "DATABASE_URL" => PrivatePostgres.url })
      expect(result.exitstatus).to eq(2)
      expect(result.stderr).to include('unexpected argument "extra"')
    end
  end

  describe "a database that cannot be used (exit status 3)" do
    database_commands = { "install" => [], "queues" => [], "tail" => ["payments"], "demo" => [] }

    database_commands.each do |command, operands|
      it "#{command} reports a closed port with PostgreSQL's reason and no password" do
        url = closed_port_url
        result = run_cli(command, *operands, "--database-url", url)
        expect(result.exitstatus).to eq(3), result.to_s
        expect(result.stderr).to include("cannot connect to PostgreSQL at " \
                                         "#{url.sub("hunter2secret", "***")}", "refused")
        expect(result.stdout + result.stderr).not_to include("hunter2secret")
      end

      it "#{command} reports a malformed URL without its password" do
        result = run_cli(command, *operands,
                         env: { "DATABASE_URL" => "postgres://operator:hunter2secret@db:port/x" })
        expect(result.exitstatus).to eq(3), result.to_s
        expect(result.stderr).to include("invalid database URL postgres://operator:***@db:port/x")
        expect(result.stdout + result.stderr).not_to include("hunter2secret")
      end
    end

    it "takes DATABASE_URL when --database-url is not given" do
      result = run_cli("queues", env: { "DATABASE_URL" => closed_port_url })
      expect(result.exitstatus).to eq(3)
    end

    it "prefers --database-url over DATABASE_URL" do
      TaskerEvents.install_pgmq(PrivatePostgres.url)
      result = run_cli("queues", "--json", "--database-url", PrivatePostgres.url,
                       env: { "DATABASE_URL" => closed_port_url })
      expect(result.exitstatus).to eq(0), result.to_s
    end
  end
end
