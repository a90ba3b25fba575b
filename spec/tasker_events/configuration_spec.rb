# frozen_string_literal: true

require "spec_helper"

RSpec.describe TaskerEvents::Configuration do
  it "fills in the documented defaults" do
    settings = described_class.new.settings
    expect(settings).to include(command_buffer_size: 1000, broadcast_buffer_size: 2000,
                                dispatch_timeout_ms: 5000, shutdown_drain_timeout_ms: 5000,
                                log_subscriber_errors: true, log_dropped_events: true)
  end

  it "names an unknown setting and lists the known ones" do
    expect { described_class.new(buffer: 1) }
      .to raise_error(TaskerEvents::ConfigError, /unknown setting :buffer; known settings:/)
  end

  it "names a value of the wrong kind" do
    expect { described_class.new(pool_size: 0) }
      .to raise_error(TaskerEvents::ConfigError,
                      /pool_size must be an Integer of at least 1, got 0/)
    expect { described_class.new(install_pgmq: "yes") }
      .to raise_error(TaskerEvents::ConfigError, /install_pgmq must be true or false/)
    expect { described_class.new(database_url: 5) }
      .to raise_error(TaskerEvents::ConfigError, /database_url must be a String/)
  end

  it "hands the native side string keys" do
    expect(described_class.new(pool_size: 3).to_native).to include("pool_size" => 3)
  end

  describe ".load" do
    let(:shipped) { File.expand_path("../../config/tasker", __dir__) }
    # The base values of the design document's Configuration section.
    let(:design_base) do
      { broadcast_buffer_size: 2000, log_subscriber_errors: true, dispatch_timeout_ms: 5000,
        command_buffer_size: 1000, shutdown_drain_timeout_ms: 5000, log_dropped_events: true,
        ffi_integration_enabled: true, deduplication_cache_size: 10_000 }
    end

    it "reads the shipped base file alone for an environment without a file" do
      expect(described_class.load(shipped, "development").settings).to include(design_base)
    end

    it "overlays the shipped test environment with the design document's test values" do
      expected = design_base.merge(broadcast_buffer_size: 1000, dispatch_timeout_ms: 2000,
                                   command_buffer_size: 100, shutdown_drain_timeout_ms: 1000,
                                   deduplication_cache_size: 1000)
      expect(described_class.load(shipped, "test").settings).to include(expected)
    end

    it "overlays the shipped production environment with the design document's values" do
      expected = design_base.merge(broadcast_buffer_size: 5000, log_subscriber_errors: false,
                                   dispatch_timeout_ms: 10_000, command_buffer_size: 5000,
                                   shutdown_drain_timeout_ms: 10_000, log_dropped_events: false)
      expect(described_class.load(shipped, "production").settings).to include(expected)
    end

    it "keeps the defaults of settings that worker.toml does not hold" do
      settings = described_class.load(shipped, "production").settings
      expect(settings).to include(database_url: nil, pool_size: 2, durable_batch_size: 500)
    end

    it "lets keyword settings override the files, and checks them too" do
      settings = described_class.load(shipped, "test", command_buffer_size: 7,
                                                       log_dropped_events: false).settings
      expect(settings).to include(command_buffer_size: 7, log_dropped_events: false,
                                  broadcast_buffer_size: 1000)
      expect { described_class.load(shipped, "test", command_buffer_size: 0) }
        .to raise_error(TaskerEvents::ConfigError, /command_buffer_size must be an Integer/)
    end

    context "with a refused worker.toml" do
      let(:in_process) { "[worker.mpsc_channels.in_process_events]\n" }
      let(:domain_events) { "[worker.mpsc_channels.domain_events]\n" }

      # The message of the ConfigError that loading `dir` raises.
      def load_error(dir, environment = "test")
        error = nil
        expect { described_class.load(dir, environment) }
          .to raise_error(TaskerEvents::ConfigError) { |raised| error = raised }
        error.message
      end

      def base_file(dir)
        File.join(dir, "base", "worker.toml")
      end

      it "names the file, line and key of an unknown key, and the known ones" do
        dir = write_worker_config("#{domain_events}command_buffer_size = 10\n" \
                                  "comand_buffer_size = 10\n")
        expect(load_error(dir))
          .to start_with("#{base_file(dir)}:3: unknown key ")
          .and include("worker.mpsc_channels.domain_events.comand_buffer_size",
                       "known keys: command_buffer_size, shutdown_drain_timeout_ms")
      end

      it "names the file and key of a value of the wrong type, and the type expected" do
        dir = write_worker_config("#{in_process}broadcast_buffer_size = \"big\"\n")
        expect(load_error(dir))
          .to eq("#{base_file(dir)}:2: worker.mpsc_channels.in_process_events." \
                 'broadcast_buffer_size must be an integer, got string "big"')

        dir = write_worker_config("#{domain_events}log_dropped_events = 1\n")
        expect(load_error(dir)).to start_with("#{base_file(dir)}:2: ")
          .and include("worker.mpsc_channels.domain_events.log_dropped_events must be a boolean")
      end

      it "names the file, key and allowed range of a value out of range" do
        dir = write_worker_config("#{in_process}dispatch_timeout_ms = 0\n")
        expect(load_error(dir))
          .to eq("#{base_file(dir)}:2: worker.mpsc_channels.in_process_events." \
                 "dispatch_timeout_ms = 0 is out of range (allowed 1..=3600000)")

        dir = write_worker_config("[worker.event_systems.worker.metadata.in_process_events]\n" \
                                  "deduplication_cache_size = -1\n")
        expect(load_error(dir)).to start_with("#{base_file(dir)}:2: ")
          .and include(".in_process_events.deduplication_cache_size = -1",
                       "(allowed 0..=10000000)")
      end

      it "names the file and line of invalid TOML" do
        dir = write_worker_config("#{domain_events}command_buffer_size = \n")
        expect(load_error(dir)).to start_with("#{base_file(dir)}:2: invalid TOML")
      end

      it "names the environment's file when that is the one refused" do
        staging = "#{domain_events}\nlog_dropped_events = \"no\"\n"
        dir = write_worker_config("", "staging" => staging)
        environment_file = File.join(dir, "environments", "staging", "worker.toml")
        expect(load_error(dir, "staging"))
          .to start_with("#{environment_file}:3: ")
          .and include("worker.mpsc_channels.domain_events.log_dropped_events")
        expect(described_class.load(dir, "test").settings).to include(log_dropped_events: true)
      end
    end
  end
end
