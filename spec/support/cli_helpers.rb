# frozen_string_literal: true

require "open3"
require "rbconfig"
require "securerandom"
require "socket"
require "uri"

# Runs the real `tasker-events` executable in a child process, the way an operator does, and
# prepares databases for it.
module CliHelpers
  ROOT = File.expand_path("../..", __dir__)
  EXE = File.join(ROOT, "exe", "tasker-events")
  LIB = File.join(ROOT, "lib")
  # Longest a command may run before the spec kills it and fails.
  PATIENCE = 60

  # What a finished command printed and how it exited.
  CliResult = Struct.new(:stdout, :stderr, :status) do
    def exitstatus = status.exitstatus

    # @return [String] both streams, for failure messages
    def to_s = "exit #{exitstatus.inspect}\nstdout:\n#{stdout}\nstderr:\n#{stderr}"
  end

  # A command still running (tail --follow), read line by line.
  class CliProcess
    attr_reader :pid

    def initialize(pid, stdout, stderr)
      @pid = pid
      @stdout = stdout
      @stderr = stderr
    end

    # @return [String] the first line of `stream` (:stdout or :stderr) matching `pattern`
    def wait_for(stream, pattern, timeout: 20)
      io = stream == :stdout ? @stdout : @stderr
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      loop do
        remaining = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        raise "no #{stream} line matched #{pattern.inspect} within #{timeout} s" \
          unless remaining.positive? && io.wait_readable(remaining)

        line = io.gets or raise "#{stream} closed before a line matched #{pattern.inspect}"
        return line if line.match?(pattern)
      end
    end

    # Sends `signal` and waits for the exit.
    # @return [Process::Status]
    def stop(signal, timeout: 20)
      Process.kill(signal, pid)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      loop do
        _, status = Process.waitpid2(pid, Process::WNOHANG)
        return status if status
        raise "tasker-events did not exit within #{timeout} s of SIG#{signal}" \
          if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep 0.05
      end
    end

    def kill
      Process.kill("KILL", pid)
      Process.wait(pid)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    end
  end

  # Runs `tasker-events args...` to completion. DATABASE_URL is unset unless `env` sets it,
  # so a spec states which database a command talks to.
  # @return [CliResult]
  def run_cli(*args, env: {})
    Open3.popen3(cli_env(env), *cli_command(args)) do |stdin, stdout, stderr, thread|
      stdin.close
      readers = [stdout, stderr].map { |io| Thread.new { io.read } }
      finish(thread, args)
      CliResult.new(readers[0].value, readers[1].value, thread.value)
    end
  end

  # Starts `tasker-events args...` and returns at once.
  # @return [CliProcess]
  def spawn_cli(*args, env: {})
    out_read, out_write = IO.pipe
    err_read, err_write = IO.pipe
    pid = Process.spawn(cli_env(env), *cli_command(args),
                        out: out_write, err: err_write, in: File::NULL)
    [out_write, err_write].each(&:close)
    CliProcess.new(pid, out_read, err_read)
  end

  # A URL on which nothing listens: a port that was free a moment ago.
  def closed_port_url(password: "hunter2secret")
    port = TCPServer.open("127.0.0.1", 0) { |server| server.addr[1] }
    "postgres://operator:#{password}@127.0.0.1:#{port}/app"
  end

  # Creates an empty database (no PGMQ) on the test server, yields its URL, drops it after.
  def with_fresh_database
    require "pg"
    name = "cli_#{SecureRandom.hex(4)}"
    admin = PG.connect(PrivatePostgres.url)
    admin.exec("CREATE DATABASE #{name}")
    url = URI(PrivatePostgres.url).tap { |uri| uri.path = "/#{name}" }.to_s
    yield url
  ensure
    admin&.exec("DROP DATABASE IF EXISTS #{name} WITH (FORCE)")
    admin&.close
  end

  # Publishes `count` durable events to `namespace` through the gem, as a worker would.
  # @return [Array<String>] their event ids, in publish order
  def publish_durable(namespace, count, name: "payment.processed")
    TaskerEvents.start(database_url: PrivatePostgres.url, install_pgmq: true)
    ids = Array.new(count) do |n|
      TaskerEvents.publish(name, { n: }, namespace:, correlation_id: SecureRandom.uuid)
    end
    raise "events were not written within 10 s" unless TaskerEvents.flush(timeout: 10)

    ids
  end

  private

  def finish(thread, args)
    return if thread.join(PATIENCE)

    Process.kill("KILL", thread.pid)
    raise "tasker-events #{args.join(" ")} did not finish within #{PATIENCE} s"
  end

  def cli_command(args)
    [RbConfig.ruby, "-I", LIB, EXE, *args]
  end

  def cli_env(env)
    { "DATABASE_URL" => nil, "PRIVATE_POSTGRES_DIR" => nil }.merge(env)
  end
end

RSpec.configure { |config| config.include CliHelpers }
