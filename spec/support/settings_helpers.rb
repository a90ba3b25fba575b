# frozen_string_literal: true

require "fileutils"
require "open3"
require "rbconfig"
require "tmpdir"
require "yaml"

# Helpers for specs that start the system with particular settings: task templates and
# worker.toml files in a directory that lives for one example, step contexts for those
# templates, waiting for a condition, and running a script in a separate Ruby process.
module SettingsHelpers
  TASK_NAME = "settings_task"
  TASK_VERSION = "1.0.0"
  LIB_DIR = File.expand_path("../../lib", __dir__)

  # A directory for this example's files; removed after the example.
  def scratch_dir
    @scratch_dir ||= Dir.mktmpdir("tasker_events_settings")
  end

  # Writes a task template and returns its path.
  # @param namespace [String] the template's namespace_name
  # @param steps [Hash{String => Array<Hash>}] step name => its event declarations
  #   (name, condition, delivery_mode, publisher)
  def write_template(namespace, steps)
    data = {
      "name" => TASK_NAME, "namespace_name" => namespace, "version" => TASK_VERSION,
      "steps" => steps.map do |step_name, events|
        { "name" => step_name, "publishes_events" => events.map { |e| e.transform_keys(&:to_s) } }
      end
    }
    path = File.join(scratch_dir, "#{namespace}.yaml")
    File.write(path, YAML.dump(data))
    path
  end

  # A context naming a step of the template written by {#write_template}.
  def step_context(namespace, step_name, step_uuid: SecureRandom.uuid, attempt: 1)
    TaskerEvents::StepContext.new(step_name:, namespace:, task_name: TASK_NAME,
                                  task_version: TASK_VERSION, step_uuid:, attempt:)
  end

  # Writes `<dir>/base/worker.toml` and any `<dir>/environments/<name>/worker.toml`; returns
  # the directory to pass as `config:`.
  def write_worker_config(base, environments = {})
    dir = File.join(scratch_dir, "config")
    { "base" => base }.merge(environments.transform_keys { |env| "environments/#{env}" })
                      .each do |relative, text|
      FileUtils.mkdir_p(File.join(dir, relative))
      File.write(File.join(dir, relative, "worker.toml"), text)
    end
    dir
  end

  # Polls until the block is true or `timeout` seconds have passed.
  # @return [Boolean] whether the block became true
  def wait_until(timeout: 5)
    deadline = monotonic_now + timeout
    until yield
      return false if monotonic_now > deadline

      sleep 0.005
    end
    true
  end

  def monotonic_now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # Seconds the block took.
  def elapsed
    started = monotonic_now
    yield
    monotonic_now - started
  end

  # The drain threads alive in this process.
  def drain_threads
    Thread.list.select { |thread| thread.name == "tasker_events-drain" }
  end

  # Runs `script` in a fresh Ruby process that can require the gem; the Rust core's log lines
  # go to that process's standard error, which is hard to capture in-process.
  # @return [Array(String, String, Process::Status)] stdout, stderr, status
  def run_ruby(script, env: {})
    Open3.capture3(env, RbConfig.ruby, "-I", LIB_DIR, "-e", script)
  end
end

RSpec.configure do |config|
  config.include SettingsHelpers
  config.after do
    FileUtils.rm_rf(@scratch_dir) if @scratch_dir
  end
end
