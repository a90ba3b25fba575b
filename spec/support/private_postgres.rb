# frozen_string_literal: true

require "monitor"
require "open3"

# The PostgreSQL server the specs talk to.
#
# With DATABASE_URL set, that server is used as it is: it belongs to someone else, so it cannot
# be stopped or restarted from here. Otherwise a private cluster is started once per process in
# tmp/spec-postgres by script/private-postgres, and stopped when the process exits.
#
# PRIVATE_POSTGRES_DIR names the cluster directory to use instead of tmp/spec-postgres. Set
# together with DATABASE_URL (bin/test sets both), it says that server is a private cluster
# too: specs may then stop and restart it, and whoever started it stops it at the end.
#
# @example
#   TaskerEvents.start(database_url: PrivatePostgres.url, install_pgmq: true)
#   PrivatePostgres.restart if PrivatePostgres.managed?
class PrivatePostgres
  # Raised when a spec asks to control a server this process may not control.
  class NotManagedError < StandardError; end

  # Raised when script/private-postgres fails; carries its stderr.
  class CommandError < StandardError; end

  ROOT = File.expand_path("../..", __dir__)
  SCRIPT = File.join(ROOT, "script", "private-postgres")
  DEFAULT_DIR = File.join(ROOT, "tmp", "spec-postgres")

  @lock = Monitor.new
  @url = nil
  @at_exit_registered = false

  class << self
    # @return [String] the DATABASE_URL to connect to; starts the private cluster on first use
    def url
      external = external_url
      return external if external && !adopted?

      @lock.synchronize { @url ||= start }
    end

    # @return [Boolean] whether specs may stop and restart the server
    def managed?
      external_url.nil? || adopted?
    end

    # Starts the cluster (creating it if needed); a no-op when it already runs.
    # @return [String] its DATABASE_URL
    def start
      ensure_managed!(:start)
      @lock.synchronize do
        @url = run("start")
        stop_at_exit unless external_url
        @url
      end
    end

    # Stops the cluster (fast shutdown: open connections are cut). {.url} keeps returning the
    # same URL, so a spec can watch clients fail until it calls {.start} again.
    # @return [void]
    def stop
      ensure_managed!(:stop)
      run("stop")
    end

    # Stops and starts the cluster on the same port, so existing URLs stay valid.
    # @return [String] its DATABASE_URL
    def restart
      ensure_managed!(:restart)
      @lock.synchronize { @url = run("restart") }
    end

    # @return [String] the cluster directory that {.start}, {.stop} and {.restart} act on
    def dir
      value = ENV.fetch("PRIVATE_POSTGRES_DIR", "")
      value.empty? ? DEFAULT_DIR : File.expand_path(value, ROOT)
    end

    private

    def external_url
      value = ENV.fetch("DATABASE_URL", "")
      value.empty? ? nil : value
    end

    # A DATABASE_URL that points at a private cluster whose directory we were told.
    def adopted?
      !external_url.nil? && !ENV.fetch("PRIVATE_POSTGRES_DIR", "").empty?
    end

    def ensure_managed!(action)
      return if managed?

      raise NotManagedError,
            "cannot #{action} the PostgreSQL server at DATABASE_URL: it was given from " \
            "outside, so this process does not control it (unset DATABASE_URL to let the " \
            "specs run a private cluster in #{DEFAULT_DIR})"
    end

    def run(command)
      stdout, stderr, status = Open3.capture3(SCRIPT, command, dir)
      return stdout.strip if status.success?

      raise CommandError, "#{SCRIPT} #{command} #{dir} failed (#{status}):\n#{stderr}"
    end

    # Forked children run at_exit handlers too; only the process that started the cluster may
    # stop it.
    def stop_at_exit
      return if @at_exit_registered

      @at_exit_registered = true
      owner = Process.pid
      at_exit do
        run("stop") if Process.pid == owner
      rescue CommandError => e
        warn(e.message)
      end
    end
  end
end
