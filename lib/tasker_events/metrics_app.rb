# frozen_string_literal: true

module TaskerEvents
  # A Rack application that serves {TaskerEvents.metrics_text} for Prometheus to scrape, so a
  # worker exposes `/metrics` without another gem. It answers every path it is mounted at.
  #
  # @example config.ru
  #   map("/metrics") { run TaskerEvents::MetricsApp.new }
  # @example a worker with no web server of its own (Debian's ruby-rack and ruby-webrick)
  #   Rack::Handler::WEBrick.run(TaskerEvents::MetricsApp.new, Port: 9394)
  class MetricsApp
    # The media type of the Prometheus text exposition format.
    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    ALLOWED = "GET, HEAD"

    # Lets the class itself be mounted: `run TaskerEvents::MetricsApp`.
    def self.call(env)
      new.call(env)
    end

    # @param env [Hash] the Rack environment
    # @return [Array(Integer, Hash, Array<String>)]
    def call(env)
      case env["REQUEST_METHOD"]
      when "GET" then metrics(head: false)
      when "HEAD" then metrics(head: true)
      else
        [405, { "content-type" => "text/plain", "allow" => ALLOWED },
         ["#{env["REQUEST_METHOD"]} is not allowed; use #{ALLOWED}\n"]]
      end
    end

    private

    def metrics(head:)
      body = TaskerEvents.metrics_text
      headers = { "content-type" => CONTENT_TYPE, "content-length" => body.bytesize.to_s,
                  "cache-control" => "no-store" }
      [200, headers, head ? [] : [body]]
    end
  end
end
